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

    /// Copies each `(component, tensors)` group into pool buffers and returns the copies in
    /// the same order. Contiguous CPU tensors are copied by plain memcpy, split over up to
    /// [`COPY_THREADS`] scoped threads; others (CUDA, strided) by torch into pinned/host buffers.
    pub fn snapshot(
        &mut self,
        groups: Vec<(String, NamedTensors)>,
        interrupt: &dyn Interrupt,
    ) -> Result<Vec<NamedTensors>> {
        let mut jobs: Vec<CopyJob> = Vec::new();
        let mut sources = Vec::new(); // keeps fast-path sources alive until copied
        let mut out = Vec::with_capacity(groups.len());
        let mut since_check = 0usize;
        for (component, tensors) in groups {
            let mut copies = Vec::with_capacity(tensors.len());
            for (name, src) in tensors {
                check_kind(&component, &name, src.kind())?;
                let mut buf = self.buffer_for(&format!("{component}/{name}"), &src)?;
                let len = src.numel() * src.kind().elt_size_in_bytes();
                if src.device() == Device::Cpu && src.is_contiguous() && buf.is_contiguous() {
                    if len > 0 {
                        jobs.push(CopyJob {
                            src: src.data_ptr() as usize,
                            dst: buf.data_ptr() as usize,
                            len,
                        });
                        sources.push(src);
                    }
                } else {
                    tch::no_grad(|| buf.f_copy_(&src.detach()))?;
                    since_check += len;
                    if since_check >= CHECK_EVERY {
                        interrupt.check()?;
                        since_check = 0;
                    }
                }
                copies.push((name, buf));
            }
            out.push(copies);
        }
        run_copies(&jobs);
        drop(sources);
        Ok(out)
    }

    /// Gives the buffers of a finished save back to the pool.
    pub fn give_back(&mut self, component: &str, tensors: NamedTensors) {
        for (name, t) in tensors {
            self.buffers.insert(format!("{component}/{name}"), t);
        }
    }
}

/// Threads for host-to-host copies. torch's own parallel copy hands each tensor to OpenMP,
/// whose barriers stall for whole scheduler slices when another process holds a core
/// (measured 20x slower on 2 busy cores); one split per snapshot over scoped threads does not.
pub const COPY_THREADS: usize = 2;

/// One memcpy of `len` bytes between addresses of live, non-overlapping CPU buffers.
#[derive(Clone, Copy)]
struct CopyJob {
    src: usize,
    dst: usize,
    len: usize,
}

/// Runs the copies, split into contiguous byte ranges over up to [`COPY_THREADS`] threads.
fn run_copies(jobs: &[CopyJob]) {
    let total: usize = jobs.iter().map(|j| j.len).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(COPY_THREADS);
    if threads <= 1 || total < (32 << 20) {
        jobs.iter().for_each(copy_job);
        return;
    }
    // Cut the job list into `threads` parts of about equal bytes, splitting jobs at the cuts.
    let per = total.div_ceil(threads);
    let mut parts: Vec<Vec<CopyJob>> = vec![Vec::new(); threads];
    let (mut part, mut filled) = (0usize, 0usize);
    for job in jobs {
        let mut job = *job;
        while job.len > 0 {
            let room = if part + 1 == threads {
                job.len
            } else {
                per - filled
            };
            let take = room.min(job.len);
            parts[part].push(CopyJob { len: take, ..job });
            job = CopyJob {
                src: job.src + take,
                dst: job.dst + take,
                len: job.len - take,
            };
            filled += take;
            if filled >= per && part + 1 < threads {
                part += 1;
                filled = 0;
            }
        }
    }
    std::thread::scope(|scope| {
        for p in &parts[1..] {
            scope.spawn(move || p.iter().for_each(copy_job));
        }
        parts[0].iter().for_each(copy_job);
    });
}

fn copy_job(job: &CopyJob) {
    let (src, dst) = (job.src as *const u8, job.dst as *mut u8);
    #[cfg(target_arch = "x86_64")]
    if job.len >= (1 << 20) && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: as below, and the CPU supports AVX2.
        unsafe { copy_streaming(src, dst, job.len) };
        return;
    }
    // SAFETY: `snapshot` built each job from a live contiguous source tensor (kept alive in
    // `sources`) and a distinct pool buffer of the same size; parts never overlap.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, job.len) }
}

/// memcpy with non-temporal stores: a snapshot is written once and read later by the writer
/// thread, so caching it only evicts the training state, and skipping the read-for-ownership
/// of each destination line cuts memory traffic by a third.
///
/// # Safety
/// `src` and `dst` must be valid, non-overlapping ranges of `len` bytes; AVX2 must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_streaming(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_stream_si256, _mm_sfence};
    // SAFETY: the caller guarantees the ranges; stores start at a 32-byte aligned address.
    unsafe {
        let head = dst.align_offset(32).min(len);
        std::ptr::copy_nonoverlapping(src, dst, head);
        let mut i = head;
        while i + 128 <= len {
            let s = src.add(i) as *const __m256i;
            let d = dst.add(i) as *mut __m256i;
            let (a, b) = (_mm256_loadu_si256(s), _mm256_loadu_si256(s.add(1)));
            let (c, e) = (_mm256_loadu_si256(s.add(2)), _mm256_loadu_si256(s.add(3)));
            _mm256_stream_si256(d, a);
            _mm256_stream_si256(d.add(1), b);
            _mm256_stream_si256(d.add(2), c);
            _mm256_stream_si256(d.add(3), e);
            i += 128;
        }
        std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i);
        _mm_sfence();
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
            .snapshot(
                vec![("m".into(), vec![("w".into(), src.shallow_clone())])],
                &Never,
            )
            .unwrap();
        let copy = copy.into_iter().next().unwrap();
        let ptr = copy[0].1.data_ptr();
        let _ = src.fill_(2.0);
        assert_eq!(copy[0].1.double_value(&[0, 0]), 1.0);
        pool.give_back("m", copy);
        let again = pool
            .snapshot(vec![("m".into(), vec![("w".into(), src)])], &Never)
            .unwrap();
        let again = again.into_iter().next().unwrap();
        assert_eq!(again[0].1.data_ptr(), ptr);
        assert_eq!(again[0].1.double_value(&[0, 0]), 2.0);
    }
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    #[test]
    fn split_copies_cover_every_byte() {
        let srcs: Vec<Vec<u8>> = (0..5)
            .map(|i| (0..(9 << 20)).map(|b| (b * 7 + i) as u8).collect())
            .collect();
        let mut dsts: Vec<Vec<u8>> = srcs.iter().map(|s| vec![0u8; s.len()]).collect();
        let jobs: Vec<CopyJob> = srcs
            .iter()
            .zip(dsts.iter_mut())
            .map(|(s, d)| CopyJob {
                src: s.as_ptr() as usize,
                dst: d.as_mut_ptr() as usize,
                len: s.len(),
            })
            .collect();
        run_copies(&jobs);
        assert!(srcs == dsts);
    }
}
