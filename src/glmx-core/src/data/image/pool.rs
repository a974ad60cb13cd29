//! Recycled host memory for float32 batches.
//!
//! A `[64, 3, 224, 224]` float32 batch is 38.5 MB: above glibc's largest mmap threshold
//! (32 MB), so a freshly allocated tensor is a fresh mapping every batch and the kernel zeroes
//! and faults in every page of it (~0.3 ms of system time per 224x224 image, a quarter of the
//! loader's CPU). Batches are instead written into buffers that come back here when the last
//! reference to a batch (the Python tensor, through the binding) is dropped; the pool keeps a
//! bounded number of them.

use std::sync::{Arc, Mutex};

/// A bounded free list of equally sized float buffers.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    keep: usize,
}

impl BufferPool {
    /// A pool that retains at most `keep` idle buffers.
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// A buffer of exactly `len` values: a recycled one (old contents: every value is
    /// overwritten by the loader) or a new zeroed one.
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuffer {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            free.retain(|b| b.len() == len);
            free.pop()
        };
        PooledBuffer {
            data: reused.unwrap_or_else(|| vec![0.0; len]),
            pool: self.clone(),
        }
    }

    /// Idle buffers held now.
    pub fn idle(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// A buffer on loan from a [`BufferPool`]; dropping it gives it back.
#[derive(Debug)]
pub struct PooledBuffer {
    data: Vec<f32>,
    pool: Arc<BufferPool>,
}

impl PooledBuffer {
    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The values, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        let mut free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.pool.keep {
            free.push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_and_the_pool_stays_bounded() {
        let pool = BufferPool::new(2);
        let mut a = pool.take(8);
        a.as_mut_slice()[0] = 7.0;
        let ptr = a.as_slice().as_ptr();
        drop(a);
        assert_eq!(pool.idle(), 1);
        let b = pool.take(8);
        assert_eq!(b.as_slice().as_ptr(), ptr, "the idle buffer is reused");
        let c = pool.take(8);
        let d = pool.take(8);
        let e = pool.take(4);
        drop((b, c, d, e));
        assert_eq!(pool.idle(), 2, "at most `keep` idle buffers");
        assert_eq!(
            pool.take(4).as_slice().len(),
            4,
            "a new size is allocated fresh"
        );
    }
}
