//! The loader: a producer thread plans steps, a private rayon pool builds each batch's rows in
//! parallel into freshly allocated (pinned when CUDA is used) host tensors, and a bounded
//! channel of `prefetch` batches hands them to the consumer.
//!
//! Position bookkeeping: each batch carries the (epoch, position) to resume from after it; the
//! consumer commits it only when the batch is handed out, so prefetched-but-unseen batches are
//! never counted and `state_dict` is exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::cancel::Interrupt;
use crate::data::sampler::{Permutation, Plan, Step};
use crate::data::transform::{build_padding, build_sample, sample_rng, Kernel, Token};
use crate::data::{check_spec, Dataset, MaskSpec};
use crate::error::CoreError;

/// Most threads a loader's private pool may have.
pub const MAX_THREADS: usize = 1024;
/// Most batches a loader may build ahead (each is a few host tensors).
pub const MAX_PREFETCH: usize = 4096;

/// Everything that shapes the batch stream besides the data.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Per-rank batch size.
    pub batch_size: u64,
    /// Shuffle with a per-epoch permutation (else dataset order).
    pub shuffle: bool,
    /// Seed of order, masking and reverse complement.
    pub seed: u64,
    /// This rank.
    pub rank: u64,
    /// Number of ranks.
    pub world_size: u64,
    /// Drop the incomplete final global step.
    pub drop_last: bool,
    /// Threads in the private pool.
    pub num_threads: usize,
    /// Batches built ahead.
    pub prefetch: usize,
    /// Allocate host batches in pinned memory (for asynchronous copies to a CUDA device).
    pub pin_memory: bool,
    /// Build ids as uint8 and labels as int8 (4x-8x fewer bytes to copy to the device).
    pub compact: bool,
    /// Masking and augmentation.
    pub mask: MaskSpec,
    /// Masks depend on the epoch (training); if false every epoch sees the same masks (eval).
    pub epoch_in_rng: bool,
}

/// Position in the stream: what `state_dict` saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Current epoch.
    pub epoch: u64,
    /// Samples of the global order consumed (by all ranks together) in this epoch.
    pub consumed: u64,
}

/// One batch as host (or pinned host) tensors.
pub struct Batch {
    /// Token ids, `[rows, seq_len]`, int64 (uint8 when compact).
    pub input_ids: Tensor,
    /// Labels, -100 where not predicted, int64 (int8 when compact).
    pub labels: Tensor,
    /// Loss weights, float32.
    pub loss_weight: Tensor,
    /// Global window index per row, -1 for padding rows, int64.
    pub sample_index: Tensor,
    /// Where the stream stands after this batch.
    pub after: Position,
}

/// What [`Loader::poll`] found.
pub enum Next {
    /// A batch, now consumed.
    Batch(Batch),
    /// The producer is still building the next batch.
    Pending,
    /// The epoch is over (or nothing was started).
    End,
}

struct Producer {
    rx: Receiver<Result<Batch, CoreError>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // Dropping the receiver makes a producer blocked on a full channel fail its send.
            drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
            let _ = h.join();
        }
    }
}

/// The stateful loader of one rank.
pub struct Loader {
    data: Arc<Dataset>,
    cfg: LoaderConfig,
    pos: Position,
    producer: Option<Producer>,
    pool: Option<(u32, Arc<rayon::ThreadPool>)>,
}

/// Validates the resource settings of `cfg` (threads, prefetch depth).
pub fn check_limits(cfg: &LoaderConfig) -> Result<(), CoreError> {
    check_resources(cfg.num_threads, cfg.prefetch)
}

/// Bounds shared by the DNA and image loaders: a thread pool and a prefetch queue are
/// allocated up front, so an absurd value would abort the process instead of failing.
pub fn check_resources(num_threads: usize, prefetch: usize) -> Result<(), CoreError> {
    if !(1..=MAX_THREADS).contains(&num_threads) {
        return Err(CoreError::Data(format!(
            "num_threads must be in [1, {MAX_THREADS}], got {num_threads}"
        )));
    }
    if !(1..=MAX_PREFETCH).contains(&prefetch) {
        return Err(CoreError::Data(format!(
            "prefetch must be in [1, {MAX_PREFETCH}] batches, got {prefetch}"
        )));
    }
    Ok(())
}

impl Loader {
    /// A loader at the start of epoch 0.
    pub fn new(data: Arc<Dataset>, cfg: LoaderConfig) -> Result<Self, CoreError> {
        if cfg.batch_size == 0 || cfg.world_size == 0 || cfg.rank >= cfg.world_size {
            return Err(CoreError::Data(format!(
                "invalid sharding: batch_size={} rank={} world_size={} (need batch_size >= 1, 0 <= rank < world_size)",
                cfg.batch_size, cfg.rank, cfg.world_size
            )));
        }
        check_limits(&cfg)?;
        check_spec(&cfg.mask)?;
        let mut cfg = cfg;
        // Pinning needs a CUDA runtime; without one, plain host memory is the only option.
        cfg.pin_memory = cfg.pin_memory && tch::Cuda::is_available();
        Ok(Loader {
            data,
            cfg,
            pos: Position::default(),
            producer: None,
            pool: None,
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.data
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
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

    /// Moves to `pos` (stops any running producer).
    pub fn seek(&mut self, pos: Position) -> Result<(), CoreError> {
        if pos.consumed > self.data.len() {
            return Err(CoreError::Data(format!(
                "cannot resume at sample {} of an epoch of {} samples (different dataset?)",
                pos.consumed,
                self.data.len()
            )));
        }
        self.producer = None;
        self.pos = pos;
        Ok(())
    }

    /// Starts producing from the current position (restarts a running producer).
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
        };
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("glmx-data".into())
            .spawn(move || job.run(&pool, &tx, &stop2))
            .map_err(|e| CoreError::Data(format!("cannot start the loader thread: {e}")))?;
        self.producer = Some(Producer {
            rx,
            stop,
            handle: Some(handle),
        });
        Ok(())
    }

    /// The next batch if one is ready: `Ok(Next::Pending)` when the producer is still building.
    /// The position advances only here, past the batch handed out.
    pub fn poll(&mut self) -> Result<Next, CoreError> {
        let Some(p) = &self.producer else {
            return Ok(Next::End);
        };
        let got = match p.rx.try_recv() {
            Ok(got) => got,
            Err(TryRecvError::Empty) => return Ok(Next::Pending),
            Err(TryRecvError::Disconnected) => {
                self.producer = None;
                return Ok(Next::End);
            }
        };
        self.take(got)
    }

    /// The next batch, waiting for it; polls `interrupt` every 50 ms while waiting.
    pub fn next_batch(&mut self, interrupt: &dyn Interrupt) -> Result<Option<Batch>, CoreError> {
        loop {
            let Some(p) = &self.producer else {
                return Ok(None);
            };
            match p.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(got) => {
                    return match self.take(got)? {
                        Next::Batch(b) => Ok(Some(b)),
                        _ => Ok(None),
                    }
                }
                Err(RecvTimeoutError::Timeout) => interrupt.check()?,
                Err(RecvTimeoutError::Disconnected) => {
                    self.producer = None;
                    return Ok(None);
                }
            }
        }
    }

    fn take(&mut self, got: Result<Batch, CoreError>) -> Result<Next, CoreError> {
        match got {
            Ok(batch) => {
                self.pos = batch.after;
                Ok(Next::Batch(batch))
            }
            Err(e) => {
                self.producer = None;
                Err(e)
            }
        }
    }

    /// Stops the producer (prefetched batches are discarded; the position is unchanged).
    pub fn stop(&mut self) {
        self.producer = None;
    }

    /// The private pool, rebuilt after a fork (threads do not survive `fork`).
    fn pool(&mut self) -> Result<Arc<rayon::ThreadPool>, CoreError> {
        let pid = std::process::id();
        if let Some((owner, pool)) = &self.pool {
            if *owner == pid {
                return Ok(pool.clone());
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.cfg.num_threads.max(1))
            .thread_name(|i| format!("glmx-data-{i}"))
            .build()
            .map_err(|e| CoreError::Data(format!("cannot build the loader thread pool: {e}")))?;
        let pool = Arc::new(pool);
        self.pool = Some((pid, pool.clone()));
        Ok(pool)
    }
}

struct Job {
    data: Arc<Dataset>,
    cfg: LoaderConfig,
    plan: Plan,
    start: Position,
}

impl Job {
    fn run(
        self,
        pool: &rayon::ThreadPool,
        tx: &SyncSender<Result<Batch, CoreError>>,
        stop: &AtomicBool,
    ) {
        let epoch = self.start.epoch;
        let perm = Permutation::new(self.plan.n, self.cfg.seed, epoch, self.cfg.shuffle);
        let mut pos = self.start.consumed;
        while let Some(step) = self.plan.step_at(pos) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let after = self.plan.position_after(step, epoch);
            let batch = pool.install(|| self.build(&perm, step, after));
            if tx.send(batch).is_err() {
                return;
            }
            pos = step.next;
        }
    }

    fn build(&self, perm: &Permutation, step: Step, after: Position) -> Result<Batch, CoreError> {
        let rows = step.len as i64;
        let seq_len = self.data.seq_len() as i64;
        let (id_kind, label_kind) = if self.cfg.compact {
            (Kind::Uint8, Kind::Int8)
        } else {
            (Kind::Int64, Kind::Int64)
        };
        let alloc = |kind: Kind, shape: &[i64]| -> Result<Tensor, CoreError> {
            let t = Tensor::f_empty(shape, (kind, Device::Cpu))?;
            Ok(if self.cfg.pin_memory {
                t.f_pin_memory(Device::Cuda(0))?
            } else {
                t
            })
        };
        let input_ids = alloc(id_kind, &[rows, seq_len])?;
        let labels = alloc(label_kind, &[rows, seq_len])?;
        let loss_weight = alloc(Kind::Float, &[rows, seq_len])?;
        let sample_index = alloc(Kind::Int64, &[rows])?;
        let (r, l) = (rows as usize, seq_len as usize);
        // SAFETY: each tensor was just allocated, is contiguous with exactly r*l (or r) elements
        // of the matching dtype, and nothing else references it until this function returns.
        unsafe {
            let w = std::slice::from_raw_parts_mut(loss_weight.data_ptr() as *mut f32, r * l);
            let si = std::slice::from_raw_parts_mut(sample_index.data_ptr() as *mut i64, r);
            if self.cfg.compact {
                let ids = std::slice::from_raw_parts_mut(input_ids.data_ptr() as *mut u8, r * l);
                let lab = std::slice::from_raw_parts_mut(labels.data_ptr() as *mut i8, r * l);
                self.fill(perm, step, ids, lab, w, si);
            } else {
                let ids = std::slice::from_raw_parts_mut(input_ids.data_ptr() as *mut i64, r * l);
                let lab = std::slice::from_raw_parts_mut(labels.data_ptr() as *mut i64, r * l);
                self.fill(perm, step, ids, lab, w, si);
            }
        }
        Ok(Batch {
            input_ids,
            labels,
            loss_weight,
            sample_index,
            after,
        })
    }

    fn fill<I: Token, L: Token>(
        &self,
        perm: &Permutation,
        step: Step,
        ids: &mut [I],
        labels: &mut [L],
        weights: &mut [f32],
        index: &mut [i64],
    ) {
        let l = self.data.seq_len() as usize;
        let kernel = &Kernel::new(&self.cfg.mask);
        let rng_epoch = if self.cfg.epoch_in_rng {
            self.start.epoch
        } else {
            0
        };
        ids.par_chunks_mut(l)
            .zip(labels.par_chunks_mut(l))
            .zip(weights.par_chunks_mut(l))
            .zip(index.par_iter_mut())
            .enumerate()
            .for_each(|(row, (((ids, labels), weights), index))| {
                let p = step.start + row as u64;
                if p >= self.plan.n {
                    build_padding(ids, labels, weights);
                    *index = -1;
                    return;
                }
                let w = perm.apply(p);
                *index = w as i64;
                let rng = sample_rng(self.cfg.seed, rng_epoch, w);
                build_sample(self.data.window(w), kernel, rng, ids, labels, weights);
            });
    }
}
