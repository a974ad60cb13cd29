//! Copies of the state to save, in host memory the background writer can read without the GIL.
//!
//! Asynchronous saves copy into a pool of host buffers that is reused from one save to the
//! next, so the training loop pays for one memcpy (no allocation, no page faults) per save.
//! Synchronous saves of contiguous CPU tensors skip the copy and write from the tensor itself.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::cancel::Interrupt;
use crate::error::{CoreError, Result};

/// Named tensors of one file-to-be.
pub type NamedTensors = Vec<(String, Tensor)>;

/// Reusable host buffers, keyed by `<component>/<tensor name>`.
#[derive(Default)]
pub struct BufferPool {
    buffers: HashMap<String, Tensor>,
}

/// Check for Ctrl-C after copying about this many bytes (a check briefly takes the GIL).
const CHECK_EVERY: usize = 64 << 20;

impl BufferPool {
    /// Bytes held by the pool.
    pub fn nbytes(&self) -> usize {
        self.buffers
            .values()
            .map(|t| t.numel() * t.kind().elt_size_in_bytes())
            .sum()
    }

    fn buffer_for(&mut self, key: &str, src: &Tensor) -> Result<Tensor> {
        let size = src.size();
        let kind = src.kind();
        if let Some(buf) = self.buffers.remove(key) {
            if buf.kind() == kind && buf.size() == size {
                return Ok(buf);
            }
        }
        let buf = Tensor::f_empty(size.as_slice(), (kind, Device::Cpu))?;
        // Pinned memory makes device-to-host copies fast and lets them run at full bandwidth.
        Ok(match src.device() {
            Device::Cuda(_) => buf.f_pin_memory(src.device())?,
            _ => buf,
        })
    }

    /// Copies `tensors` of `component` into pool buffers and returns the copies. The old
    /// buffers for names no longer present are dropped.
    pub fn snapshot(
        &mut self,
        component: &str,
        tensors: NamedTensors,
        interrupt: &dyn Interrupt,
    ) -> Result<NamedTensors> {
        let mut out = Vec::with_capacity(tensors.len());
        let mut since_check = 0usize;
        for (name, src) in tensors {
            check_kind(component, &name, src.kind())?;
            let key = format!("{component}/{name}");
            let mut buf = self.buffer_for(&key, &src)?;
            tch::no_grad(|| buf.f_copy_(&src.detach()))?;
            since_check += buf.numel() * buf.kind().elt_size_in_bytes();
            if since_check >= CHECK_EVERY {
                interrupt.check()?;
                since_check = 0;
            }
            out.push((name, buf));
        }
        Ok(out)
    }

    /// Gives the buffers of a finished save back to the pool.
    pub fn give_back(&mut self, component: &str, tensors: NamedTensors) {
        for (name, t) in tensors {
            self.buffers.insert(format!("{component}/{name}"), t);
        }
    }
}

/// A view of `tensors` that the writer can read: contiguous CPU tensors pass through
/// (sharing storage), others are copied. Used by synchronous saves.
pub fn host_views(component: &str, tensors: NamedTensors) -> Result<NamedTensors> {
    tensors
        .into_iter()
        .map(|(name, t)| {
            check_kind(component, &name, t.kind())?;
            let t = t.detach();
            let t = if t.device() == Device::Cpu {
                t
            } else {
                t.f_to_device(Device::Cpu)?
            };
            let t = if t.is_contiguous() {
                t
            } else {
                t.f_contiguous()?
            };
            Ok((name, t))
        })
        .collect()
}

fn check_kind(component: &str, name: &str, kind: Kind) -> Result<()> {
    if super::format::dtype_name(kind).is_none() {
        return Err(CoreError::Checkpoint(format!(
            "{component}: tensor '{name}' has dtype {kind:?}, which safetensors cannot store"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cancel::Never;

    #[test]
    fn buffers_are_reused_and_independent() {
        let mut pool = BufferPool::default();
        let mut src = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let copy = pool
            .snapshot("m", vec![("w".into(), src.shallow_clone())], &Never)
            .unwrap();
        let ptr = copy[0].1.data_ptr();
        let _ = src.fill_(2.0);
        assert_eq!(copy[0].1.double_value(&[0, 0]), 1.0);
        pool.give_back("m", copy);
        let again = pool.snapshot("m", vec![("w".into(), src)], &Never).unwrap();
        assert_eq!(again[0].1.data_ptr(), ptr);
        assert_eq!(again[0].1.double_value(&[0, 0]), 2.0);
    }
}
