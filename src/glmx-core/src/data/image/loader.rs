//! The image batch stream of one rank: the DNA loader's design (see [`crate::data::loader`])
//! with images as samples. A producer thread walks the [`Plan`] of steps of the seeded
//! [`Permutation`]; each batch's images are decoded and transformed in parallel in the private
//! rayon pool (two batches in flight, handed out in order) straight into the batch's memory:
//! recycled host buffers for float32 on CPU ([`super::pool`]), fresh (pinned on CUDA) tensors
//! otherwise; a bounded channel holds `prefetch` batches. Every batch carries the [`Position`]
//! after it, committed only when handed out, so `position()` is exact and a resumed stream is
//! bit-identical.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::cancel::Interrupt;
use crate::data::image::decode::{decode_file_into, Rgb};
use crate::data::image::folder::ImageFolder;
use crate::data::image::pool::{BufferPool, PooledBuffer};
use crate::data::image::resample::{render_into, Buffers, Norm, Pixel};
use crate::data::image::transform::{plan, ImageSpec};
use crate::data::sampler::{Permutation, Plan, Step};
use crate::data::transform::sample_rng;
use crate::data::Position;
use crate::error::CoreError;

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

type Item = Result<ImageBatch, CoreError>;

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

struct Job {
    data: Arc<ImageFolder>,
    cfg: ImageLoaderConfig,
    plan: Plan,
    start: Position,
    bad: Arc<AtomicU64>,
    buffers: Arc<BufferPool>,
}

/// Batches built at once. One at a time, every batch ends in a barrier: the threads that
/// finish their share wait for the last image (for a whole time slice when the machine is
/// busy and that thread is descheduled). With the next batch already queued they work on it.
const IN_FLIGHT: usize = 2;

impl Job {
    fn run(self, pool: &rayon::ThreadPool, tx: &SyncSender<Item>, stop: &Arc<AtomicBool>) {
        let epoch = self.start.epoch;
        let perm = Arc::new(Permutation::new(
            self.plan.n,
            self.cfg.seed,
            epoch,
            self.cfg.shuffle,
        ));
        let job = Arc::new(self);
        let mut pos = job.start.consumed;
        let mut pending = std::collections::VecDeque::with_capacity(IN_FLIGHT);
        loop {
            while pending.len() < IN_FLIGHT {
                let Some(step) = job.plan.step_at(pos) else {
                    break;
                };
                let end = step.next >= job.plan.n || job.plan.step_at(step.next).is_none();
                let after = if end {
                    Position {
                        epoch: epoch + 1,
                        consumed: 0,
                    }
                } else {
                    Position {
                        epoch,
                        consumed: step.next,
                    }
                };
                let (btx, brx) = sync_channel(1);
                let (job, perm, stop) = (job.clone(), perm.clone(), stop.clone());
                pool.spawn(move || {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // A panic here would abort the process (rayon's default for spawned
                    // work); it becomes this batch's error instead.
                    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job.build(&perm, step, after, epoch)
                    }))
                    .unwrap_or_else(|_| {
                        Err(CoreError::Data(
                            "internal error while building an image batch (a bug: please report it)"
                                .into(),
                        ))
                    });
                    let _ = btx.send(built);
                });
                pending.push_back(brx);
                pos = step.next;
            }
            let Some(next) = pending.pop_front() else {
                return;
            };
            let Ok(batch) = next.recv() else {
                return;
            };
            if stop.load(Ordering::Relaxed) || tx.send(batch).is_err() {
                return;
            }
        }
    }

    fn build(&self, perm: &Permutation, step: Step, after: Position, epoch: u64) -> Item {
        let rows = step.len as i64;
        let (h, w) = (self.cfg.spec.height as i64, self.cfg.spec.width as i64);
        let alloc = |kind: Kind, shape: &[i64]| -> Result<Tensor, CoreError> {
            let t = Tensor::f_empty(shape, (kind, Device::Cpu))?;
            Ok(if self.cfg.pin_memory {
                t.f_pin_memory(Device::Cuda(0))?
            } else {
                t
            })
        };
        let labels = alloc(Kind::Int64, &[rows])?;
        let sample_index = alloc(Kind::Int64, &[rows])?;
        let (r, per) = (rows as usize, (3 * h * w) as usize);
        // SAFETY: each tensor was just allocated, is contiguous with exactly r*per (or r)
        // elements of the matching dtype, and nothing else references it until we return.
        let pixel_values = unsafe {
            let lab = std::slice::from_raw_parts_mut(labels.data_ptr() as *mut i64, r);
            let idx = std::slice::from_raw_parts_mut(sample_index.data_ptr() as *mut i64, r);
            if self.cfg.uint8 {
                let t = alloc(Kind::Uint8, &[rows, 3, h, w])?;
                let px = std::slice::from_raw_parts_mut(t.data_ptr() as *mut u8, r * per);
                self.fill(perm, step, epoch, px, lab, idx)?;
                Pixels::Tensor(t)
            } else if self.cfg.pin_memory {
                let t = alloc(Kind::Float, &[rows, 3, h, w])?;
                let px = std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, r * per);
                self.fill(perm, step, epoch, px, lab, idx)?;
                Pixels::Tensor(t)
            } else {
                let mut buffer = self.buffers.take(r * per);
                self.fill(perm, step, epoch, buffer.as_mut_slice(), lab, idx)?;
                Pixels::Host {
                    buffer,
                    shape: [rows, 3, h, w],
                }
            }
        };
        Ok(ImageBatch {
            pixel_values,
            labels,
            sample_index,
            after,
        })
    }

    fn fill<P: Pixel>(
        &self,
        perm: &Permutation,
        step: Step,
        epoch: u64,
        px: &mut [P],
        labels: &mut [i64],
        index: &mut [i64],
    ) -> Result<(), CoreError> {
        let spec = &self.cfg.spec;
        let (ow, oh) = (spec.width as usize, spec.height as usize);
        let per = 3 * ow * oh;
        let norm = Norm::mean_std(spec.mean, spec.std);
        px.par_chunks_mut(per)
            .zip(labels.par_iter_mut())
            .zip(index.par_iter_mut())
            .enumerate()
            .try_for_each(|(row, ((px, label), index))| {
                let p = step.start + row as u64;
                let pad = |px: &mut [P], label: &mut i64, index: &mut i64| {
                    px.iter_mut().for_each(|v| *v = P::ZERO);
                    *label = -100;
                    *index = -1;
                };
                if p >= self.plan.n {
                    pad(px, label, index);
                    return Ok(());
                }
                let i = perm.apply(p);
                let path = &self.data.files[i as usize];
                SCRATCH.with_borrow_mut(|s| {
                    if let Err(e) = decode_file_into(path, &mut s.bytes, &mut s.img) {
                        if self.cfg.on_bad != OnBad::Skip {
                            return Err(e);
                        }
                        if self.bad.fetch_add(1, Ordering::Relaxed) < 10 {
                            tracing::warn!("skipping unreadable image: {e}");
                        }
                        pad(px, label, index);
                        return Ok(());
                    }
                    let mut rng = sample_rng(self.cfg.seed, epoch, i);
                    let plan = plan(spec, s.img.width, s.img.height, &mut rng);
                    render_into(&s.img, &plan, ow, oh, &norm, px, &mut s.resample);
                    *label = self.data.labels[i as usize] as i64;
                    *index = i as i64;
                    Ok(())
                })
            })
    }
}

/// Per-thread buffers reused from image to image (file bytes, decoded pixels, the resampler's
/// intermediate planes): allocating them per image costs page faults on every image.
#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    img: Rgb,
    resample: Buffers,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}
