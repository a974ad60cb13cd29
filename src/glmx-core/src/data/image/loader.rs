//! The image batch stream of one rank: the DNA loader's design (see [`crate::data::loader`])
//! with images as samples. A producer thread walks the [`Plan`] of steps of the seeded
//! [`Permutation`]; each batch's images are decoded and transformed in parallel in the private
//! rayon pool (two batches in flight, handed out in order) straight into the batch's memory:
//! recycled host buffers for float32 on CPU ([`super::pool`]), fresh (pinned on CUDA) tensors
//! otherwise; a bounded channel holds `prefetch` batches. Every batch carries the [`Position`]
//! after it, committed only when handed out, so `position()` is exact and a resumed stream is
//! bit-identical.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tch::Tensor;

use crate::cancel::Interrupt;
use crate::data::image::folder::ImageFolder;
use crate::data::image::job::{Job, IN_FLIGHT};
use crate::data::image::pool::{BufferPool, PooledBuffer};
use crate::data::image::transform::ImageSpec;
use crate::data::loader::check_resources;
use crate::data::sampler::Plan;
use crate::data::Position;
use crate::error::CoreError;

/// Largest batch the loader allocates (f32 pixels of `batch_size` images).
pub const MAX_BATCH_BYTES: u128 = 64 << 30;

/// What to do with an image that cannot be read or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBad {
    /// Fail with an error naming the file.
    Error,
    /// Turn its row into a padding row (`sample_index` -1, label -100) and count it.
    Skip,
}

/// Everything that shapes the stream besides the files.
#[derive(Debug, Clone)]
pub struct ImageLoaderConfig {
    /// Per-rank batch size.
    pub batch_size: u64,
    /// A fresh seeded permutation every epoch (else folder order).
    pub shuffle: bool,
    /// Seed of order and augmentation.
    pub seed: u64,
    /// This rank.
    pub rank: u64,
    /// Number of ranks.
    pub world_size: u64,
    /// Drop the incomplete final global step.
    pub drop_last: bool,
    /// Threads of the private pool.
    pub num_threads: usize,
    /// Batches built ahead.
    pub prefetch: usize,
    /// Pinned host memory (for asynchronous copies to CUDA).
    pub pin_memory: bool,
    /// Pixels as uint8 `[0, 255]` (normalize on the device) instead of normalized float32.
    pub uint8: bool,
    /// The transform.
    pub spec: ImageSpec,
    /// Bad image policy.
    pub on_bad: OnBad,
}

/// The pixel rows of a batch, `[rows, 3, H, W]`.
pub enum Pixels {
    /// A host tensor: uint8 when configured, pinned when copying to CUDA.
    Tensor(Tensor),
    /// Float32 in recycled host memory (see [`crate::data::image::pool`]): the binding hands
    /// it to Python without a copy and the buffer returns to the pool with the last reference.
    Host {
        /// `rows * 3 * H * W` values.
        buffer: PooledBuffer,
        /// `[rows, 3, H, W]`.
        shape: [i64; 4],
    },
}

impl Pixels {
    /// A tensor of the pixels (a copy for [`Pixels::Host`]).
    pub fn to_tensor(&self) -> Result<Tensor, CoreError> {
        Ok(match self {
            Pixels::Tensor(t) => t.shallow_clone(),
            Pixels::Host { buffer, shape } => {
                Tensor::f_from_slice(buffer.as_slice())?.f_reshape(shape)?
            }
        })
    }
}

/// One batch of host tensors.
pub struct ImageBatch {
    /// `[rows, 3, H, W]` normalized float32 (uint8 in [0, 255] when configured).
    pub pixel_values: Pixels,
    /// Class index per row, int64; -100 for padding and skipped rows.
    pub labels: Tensor,
    /// Global image index per row, int64; -1 for padding and skipped rows.
    pub sample_index: Tensor,
    /// Where the stream stands after this batch.
    pub after: Position,
}

/// What [`ImageLoader::poll`] found.
pub enum ImageNext {
    /// A batch, now consumed.
    Batch(ImageBatch),
    /// Still being built.
    Pending,
    /// End of the epoch (or not started).
    End,
}

pub(super) type Item = Result<ImageBatch, CoreError>;

struct Producer {
    rx: Receiver<Item>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
            let _ = h.join();
        }
    }
}

/// The stateful image loader of one rank.
pub struct ImageLoader {
    data: Arc<ImageFolder>,
    cfg: ImageLoaderConfig,
    pos: Position,
    producer: Option<Producer>,
    pool: Option<(u32, Arc<rayon::ThreadPool>)>,
    buffers: Arc<BufferPool>,
    bad: Arc<AtomicU64>,
}

impl ImageLoader {
    /// A loader at the start of epoch 0.
    pub fn new(data: Arc<ImageFolder>, cfg: ImageLoaderConfig) -> Result<Self, CoreError> {
        if cfg.batch_size == 0 || cfg.world_size == 0 || cfg.rank >= cfg.world_size {
            return Err(CoreError::Data(format!(
                "invalid sharding: batch_size={} rank={} world_size={} (need batch_size >= 1, 0 <= rank < world_size)",
                cfg.batch_size, cfg.rank, cfg.world_size
            )));
        }
        cfg.spec.check()?;
        check_resources(cfg.num_threads, cfg.prefetch)?;
        // One batch is allocated whole (f32 pixels); refuse sizes no machine holds rather
        // than abort on the allocation.
        let bytes = (cfg.batch_size as u128)
            * 3
            * u128::from(cfg.spec.height)
            * u128::from(cfg.spec.width)
            * 4;
        if bytes > MAX_BATCH_BYTES {
            return Err(CoreError::Data(format!(
                "batch_size={} at {}x{} needs {} GiB per batch (limit {} GiB): lower batch_size or image_size",
                cfg.batch_size,
                cfg.spec.height,
                cfg.spec.width,
                bytes >> 30,
                MAX_BATCH_BYTES >> 30
            )));
        }
        let mut cfg = cfg;
        cfg.pin_memory = cfg.pin_memory && tch::Cuda::is_available();
        // Idle batch buffers kept: the prefetched batches, those being built and one the
        // caller holds.
        let keep = cfg.prefetch.max(1) + IN_FLIGHT + 1;
        Ok(ImageLoader {
            data,
            cfg,
            pos: Position::default(),
            producer: None,
            pool: None,
            buffers: BufferPool::new(keep),
            bad: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The scanned split.
    pub fn folder(&self) -> &Arc<ImageFolder> {
        &self.data
    }

    fn plan(&self) -> Plan {
        Plan {
            n: self.data.len(),
            batch: self.cfg.batch_size,
            world: self.cfg.world_size,
            rank: self.cfg.rank,
            drop_last: self.cfg.drop_last,
        }
    }

    /// Batches per epoch on this rank (equal on every rank).
    pub fn len(&self) -> u64 {
        self.plan().batches_from(0)
    }

    /// True when an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current position.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Images skipped as unreadable so far (with [`OnBad::Skip`]).
    pub fn bad_images(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    /// Moves to `pos` (stops any running producer).
    pub fn seek(&mut self, pos: Position) -> Result<(), CoreError> {
        if pos.consumed > self.data.len() {
            return Err(CoreError::Data(format!(
                "cannot resume at image {} of an epoch of {} images (different folder?)",
                pos.consumed,
                self.data.len()
            )));
        }
        self.producer = None;
        self.pos = pos;
        Ok(())
    }

    /// Starts producing from the current position.
    pub fn start(&mut self) -> Result<(), CoreError> {
        self.producer = None;
        let pool = self.pool()?;
        let (tx, rx) = sync_channel(self.cfg.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let job = Job {
            data: self.data.clone(),
            cfg: self.cfg.clone(),
            plan: self.plan(),
            start: self.pos,
            bad: self.bad.clone(),
            buffers: self.buffers.clone(),
        };
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("glmx-images".into())
            .spawn(move || job.run(&pool, &tx, &stop2))
            .map_err(|e| CoreError::Data(format!("cannot start the loader thread: {e}")))?;
        self.producer = Some(Producer {
            rx,
            stop,
            handle: Some(handle),
        });
        Ok(())
    }

    /// The next batch if ready; the position advances only here.
    pub fn poll(&mut self) -> Result<ImageNext, CoreError> {
        let Some(p) = &self.producer else {
            return Ok(ImageNext::End);
        };
        match p.rx.try_recv() {
            Ok(got) => self.take(got).map(ImageNext::Batch),
            Err(TryRecvError::Empty) => Ok(ImageNext::Pending),
            Err(TryRecvError::Disconnected) => {
                self.producer = None;
                Ok(ImageNext::End)
            }
        }
    }

    /// The next batch, waiting for it; checks `interrupt` every 50 ms.
    pub fn next_batch(
        &mut self,
        interrupt: &dyn Interrupt,
    ) -> Result<Option<ImageBatch>, CoreError> {
        loop {
            let Some(p) = &self.producer else {
                return Ok(None);
            };
            match p.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(got) => return self.take(got).map(Some),
                Err(RecvTimeoutError::Timeout) => interrupt.check()?,
                Err(RecvTimeoutError::Disconnected) => {
                    self.producer = None;
                    return Ok(None);
                }
            }
        }
    }

    fn take(&mut self, got: Item) -> Result<ImageBatch, CoreError> {
        match got {
            Ok(batch) => {
                self.pos = batch.after;
                Ok(batch)
            }
            Err(e) => {
                self.producer = None;
                Err(e)
            }
        }
    }

    /// Stops the producer (prefetched batches are discarded; the position is kept).
    pub fn stop(&mut self) {
        self.producer = None;
    }

    fn pool(&mut self) -> Result<Arc<rayon::ThreadPool>, CoreError> {
        let pid = std::process::id();
        if let Some((owner, pool)) = &self.pool {
            if *owner == pid {
                return Ok(pool.clone());
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.cfg.num_threads.max(1))
            .thread_name(|i| format!("glmx-images-{i}"))
            .build()
            .map_err(|e| CoreError::Data(format!("cannot build the loader thread pool: {e}")))?;
        let pool = Arc::new(pool);
        self.pool = Some((pid, pool.clone()));
        Ok(pool)
    }
}
