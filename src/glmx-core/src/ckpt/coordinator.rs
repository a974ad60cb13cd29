//! The coordinator: snapshots state, writes it in the background and commits it atomically.
//!
//! Commit protocol (a `kill -9` at any point leaves the previous checkpoint intact):
//! 1. every rank writes its files into `checkpoints/.checkpoint-<step>.tmp/` and fsyncs them,
//!    then writes a `.rank-<r>.json` marker listing them;
//! 2. rank 0 waits for all markers, writes `checkpoint_manifest.json`, fsyncs the directory,
//!    renames it to `checkpoint-<step>` and fsyncs `checkpoints/` (the rename is the commit);
//! 3. rank 0 moves the `latest` pointer (temp file + rename) and applies retention.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};

use super::fsutil::{self, io_err};
use super::manifest::Sharing;
use super::retention::Mode;
use super::snapshot::{host_views, BufferPool, NamedTensors};
use super::writer::write_job;
use crate::cancel::Interrupt;
use crate::error::{CoreError, Result};

/// How a run checkpoints; one per process (rank).
#[derive(Debug, Clone)]
pub struct Options {
    /// The run directory; checkpoints go to `<run_dir>/checkpoints/`.
    pub run_dir: PathBuf,
    /// Number of ranks.
    pub world_size: usize,
    /// This process's rank.
    pub rank: usize,
    /// Ranks per node (PER_NODE components are written by local rank 0).
    pub local_world_size: usize,
    /// Ranks per group (PER_GROUP components are written by each group's first rank).
    pub group_size: usize,
    /// Keep at most this many checkpoints (plus kept-best ones; never below one).
    pub save_total_limit: Option<usize>,
    /// Keep the best `keep_best` checkpoints by `monitor`.
    pub keep_best: usize,
    /// Metric name for best-k retention and `resolve("best")`.
    pub monitor: Option<String>,
    /// Whether lower or higher `monitor` is better.
    pub mode: Mode,
    /// Model weights above this size are split into HF-style shards.
    pub max_shard_size: u64,
    /// How long rank 0 waits for the other ranks' files.
    pub barrier_timeout: Duration,
    /// Recorded in manifests.
    pub torch_version: String,
    /// Ranks > 0 send checksums of REPLICATED components; rank 0 fails the save on a mismatch.
    pub validate_replicated: bool,
    /// Identifies this launch of the run, the same on every rank (e.g. derived from the
    /// launcher's run id and port). Rank 0 ignores part markers of another session, so a
    /// half-written save left by an interrupted launch is never mistaken for this one's.
    pub session: String,
}

impl Options {
    /// `<run_dir>/checkpoints`.
    pub fn root(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
    }

    /// File suffix and shard index when this rank writes a component with `sharing`.
    pub(crate) fn writes(&self, sharing: Sharing) -> Option<(String, Option<usize>)> {
        match sharing {
            Sharing::Global | Sharing::Replicated => {
                (self.rank == 0).then(|| (String::new(), None))
            }
            Sharing::PerRank => Some((format!("_rank{}", self.rank), Some(self.rank))),
            Sharing::PerNode => self.rank.is_multiple_of(self.local_world_size).then(|| {
                let node = self.rank / self.local_world_size;
                (format!("_node{node}"), Some(node))
            }),
            Sharing::PerGroup => self.rank.is_multiple_of(self.group_size).then(|| {
                let group = self.rank / self.group_size;
                (format!("_group{group}"), Some(group))
            }),
        }
    }

    /// The shard a rank reads for `sharing` (None: the single file).
    pub(crate) fn shard_for(&self, sharing: Sharing) -> Option<usize> {
        match sharing {
            Sharing::Global | Sharing::Replicated => None,
            Sharing::PerRank => Some(self.rank),
            Sharing::PerNode => Some(self.rank / self.local_world_size),
            Sharing::PerGroup => Some(self.rank / self.group_size),
        }
    }
}

/// One non-model component handed to [`Coordinator::save`].
pub struct ComponentInput {
    /// File stem, e.g. `optimizer`.
    pub name: String,
    /// Who writes it.
    pub sharing: Sharing,
    /// Its tensors.
    pub tensors: NamedTensors,
    /// Strings stored in the file's `__metadata__` (the Python side puts the JSON structure
    /// of nested state here).
    pub file_metadata: BTreeMap<String, String>,
    /// Free-form JSON recorded in the manifest.
    pub info: Value,
}

/// Everything one save writes.
pub struct SaveRequest {
    /// Global step (names the directory).
    pub step: u64,
    /// Model weights (GLOBAL, written by rank 0).
    pub model: NamedTensors,
    /// Other components.
    pub components: Vec<ComponentInput>,
    /// Metrics recorded in the manifest.
    pub metrics: Map<String, Value>,
}

/// A save prepared for writing: host tensors only.
pub(crate) struct Job {
    pub(crate) step: u64,
    pub(crate) model: NamedTensors,
    pub(crate) components: Vec<ComponentInput>,
    pub(crate) metrics: Map<String, Value>,
}

type JobOutcome = (Job, Result<PathBuf>);

/// Saves and loads checkpoints of one run on one rank.
pub struct Coordinator {
    pub(crate) opts: Arc<Options>,
    pool: BufferPool,
    pending: Option<(u64, JoinHandle<JobOutcome>)>,
}

/// Turns any error of a checkpoint operation into a `CoreError::Checkpoint` (so I/O failures
/// surface as `CheckpointError` in Python), keeping `Interrupted` as is.
pub(crate) fn as_ckpt(context: &str, err: CoreError) -> CoreError {
    match err {
        CoreError::Interrupted => CoreError::Interrupted,
        CoreError::Checkpoint(msg) if context.is_empty() => CoreError::Checkpoint(msg),
        other if context.is_empty() => CoreError::Checkpoint(other.to_string()),
        other => CoreError::Checkpoint(format!("{context}: {other}")),
    }
}

impl Coordinator {
    /// Validates `opts`; rank 0 creates `checkpoints/` and removes leftovers of crashed saves
    /// that cannot belong to a rank of this run (any start order of the ranks is safe).
    pub fn new(opts: Options) -> Result<Self> {
        let bad = |m: String| Err(CoreError::Checkpoint(m));
        if opts.world_size == 0 || opts.rank >= opts.world_size {
            return bad(format!(
                "rank {} is out of range for world_size {}",
                opts.rank, opts.world_size
            ));
        }
        if opts.local_world_size == 0 || opts.group_size == 0 {
            return bad("local_world_size and group_size must be >= 1".into());
        }
        if opts.keep_best > 0 && opts.monitor.is_none() {
            return bad(format!(
                "keep_best={} needs a monitor metric name",
                opts.keep_best
            ));
        }
        if opts.rank == 0 {
            let root = opts.root();
            std::fs::create_dir_all(&root).map_err(|e| as_ckpt("", io_err(&root)(e)))?;
            let removed = fsutil::cleanup_stale(&root, opts.world_size == 1)?;
            if removed > 0 {
                tracing::info!(
                    "removed {removed} incomplete checkpoint(s) left by an interrupted save in {}",
                    root.display()
                );
            }
        }
        Ok(Self {
            opts: Arc::new(opts),
            pool: BufferPool::default(),
            pending: None,
        })
    }

    /// The options this coordinator runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Bytes held in reusable host buffers.
    pub fn buffer_bytes(&self) -> usize {
        self.pool.nbytes()
    }

    /// Saves a checkpoint and returns its final directory. Blocks for the previous save first
    /// (its failure is returned here). With `async_save`, blocks only while tensors are copied
    /// into host buffers; the write and commit run on a background thread.
    pub fn save(
        &mut self,
        req: SaveRequest,
        async_save: bool,
        interrupt: &dyn Interrupt,
    ) -> Result<PathBuf> {
        self.wait()?;
        let opts = Arc::clone(&self.opts);
        if let (true, Some(monitor)) = (opts.keep_best > 0, &opts.monitor) {
            if !req.metrics.contains_key(monitor) {
                let keys: Vec<&String> = req.metrics.keys().collect();
                return Err(CoreError::Checkpoint(format!(
                    "monitored metric '{monitor}' is not in the metrics passed to save (got {keys:?}); log it before saving"
                )));
            }
        }
        let final_dir = opts.root().join(format!("{}{}", fsutil::PREFIX, req.step));
        // Only what this rank writes (or checksums) is copied.
        let keep = |c: &ComponentInput| {
            opts.writes(c.sharing).is_some()
                || (opts.validate_replicated && c.sharing == Sharing::Replicated)
        };
        let model = if opts.rank == 0 {
            req.model
        } else {
            Vec::new()
        };
        let components: Vec<ComponentInput> = req.components.into_iter().filter(keep).collect();
        let job = if async_save {
            let mut groups = vec![("model".to_string(), model)];
            let mut shells = Vec::with_capacity(components.len());
            for mut c in components {
                groups.push((c.name.clone(), std::mem::take(&mut c.tensors)));
                shells.push(c);
            }
            let mut copies = self
                .pool
                .snapshot(groups, interrupt)
                .map_err(|e| as_ckpt("", e))?
                .into_iter();
            let model = copies.next().unwrap_or_default();
            let snap: Vec<ComponentInput> = shells
                .into_iter()
                .zip(copies)
                .map(|(c, tensors)| ComponentInput { tensors, ..c })
                .collect();
            Job {
                step: req.step,
                model,
                components: snap,
                metrics: req.metrics,
            }
        } else {
            let model = host_views("model", model)?;
            let mut views = Vec::with_capacity(components.len());
            for c in components {
                let tensors = host_views(&c.name, c.tensors)?;
                views.push(ComponentInput { tensors, ..c });
            }
            Job {
                step: req.step,
                model,
                components: views,
                metrics: req.metrics,
            }
        };
        if !async_save {
            return write_job(&opts, &job)
                .map_err(|e| as_ckpt(&format!("saving checkpoint step {}", job.step), e));
        }
        let step = job.step;
        let handle = std::thread::Builder::new()
            .name(format!("glmx-ckpt-{step}"))
            .spawn(move || {
                let result = write_job(&opts, &job);
                (job, result)
            })
            .map_err(|e| {
                CoreError::Checkpoint(format!("cannot start the checkpoint writer thread: {e}"))
            })?;
        self.pending = Some((step, handle));
        Ok(final_dir)
    }

    /// Whether a background save is still running.
    pub fn busy(&self) -> bool {
        self.pending.as_ref().is_some_and(|(_, h)| !h.is_finished())
    }

    /// Waits for the background save; returns its directory, or its error as a
    /// `CoreError::Checkpoint` naming the step. Returns `Ok(None)` when nothing was pending.
    pub fn wait(&mut self) -> Result<Option<PathBuf>> {
        let Some((step, handle)) = self.pending.take() else {
            return Ok(None);
        };
        let (job, result) = handle.join().map_err(|_| {
            CoreError::Checkpoint(format!("the checkpoint writer for step {step} panicked"))
        })?;
        self.pool.give_back("model", job.model);
        for c in job.components {
            self.pool.give_back(&c.name, c.tensors);
        }
        result.map(Some).map_err(|e| {
            as_ckpt(
                &format!("asynchronous save of checkpoint step {step} failed"),
                e,
            )
        })
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Err(err) = self.wait() {
            tracing::error!("{err}");
        }
    }
}
