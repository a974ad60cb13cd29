//! The coordinator: snapshots state, writes it in the background and commits it atomically.
//!
//! Commit protocol (a `kill -9` at any point leaves the previous checkpoint intact):
//! 1. every rank writes its files into `checkpoints/.checkpoint-<step>.tmp/` and fsyncs them,
//!    then writes a `.rank-<r>.json` marker listing them;
//! 2. rank 0 waits for all markers, writes `checkpoint_manifest.json`, fsyncs the directory,
//!    renames it to `checkpoint-<step>` and fsyncs `checkpoints/` (the rename is the commit);
//! 3. rank 0 moves the `latest` pointer (temp file + rename) and applies retention.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};

use super::format::{self, FileRecord};
use super::fsutil::{self, io_err};
use super::manifest::{
    combine_checksums, iso_timestamp_now, ComponentRecord, Manifest, Sharing, FORMAT_VERSION,
    MANIFEST,
};
use super::retention::{self, Mode};
use super::snapshot::{host_views, BufferPool, NamedTensors};
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
}

impl Options {
    /// `<run_dir>/checkpoints`.
    pub fn root(&self) -> PathBuf {
        self.run_dir.join("checkpoints")
    }

    /// File suffix and shard index when this rank writes a component with `sharing`.
    fn writes(&self, sharing: Sharing) -> Option<(String, Option<usize>)> {
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
struct Job {
    step: u64,
    model: NamedTensors,
    components: Vec<ComponentInput>,
    metrics: Map<String, Value>,
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
    /// Validates `opts`; rank 0 creates `checkpoints/` and removes leftovers of crashed saves.
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
            let removed = fsutil::cleanup_stale(&root)?;
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

/// Splits model weights into shards of at most `max` bytes (a tensor larger than `max` gets
/// its own shard), keeping order.
fn shard_model(model: &NamedTensors, max: u64) -> Vec<std::ops::Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, (_, t)) in model.iter().enumerate() {
        let n = (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        if i > start && bytes + n > max {
            shards.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += n;
    }
    shards.push(start..model.len());
    shards
}

fn write_model(opts: &Options, tmp: &Path, model: &NamedTensors) -> Result<Vec<FileRecord>> {
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let shards = shard_model(model, opts.max_shard_size);
    if shards.len() == 1 {
        return Ok(vec![format::write_file(
            &tmp.join("model.safetensors"),
            "model.safetensors",
            &format::raw_views(model)?,
            &meta,
        )?]);
    }
    let n = shards.len();
    let mut files = Vec::with_capacity(n + 1);
    let mut weight_map = Map::new();
    let mut total = 0u64;
    for (i, range) in shards.into_iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let part = &model[range];
        for (tname, t) in part {
            weight_map.insert(tname.clone(), Value::String(name.clone()));
            total += (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        }
        files.push(format::write_file(
            &tmp.join(&name),
            &name,
            &format::raw_views(part)?,
            &meta,
        )?);
    }
    let index =
        serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    let bytes =
        serde_json::to_vec_pretty(&index).map_err(|e| CoreError::Checkpoint(e.to_string()))?;
    let index_name = "model.safetensors.index.json";
    fsutil::write_synced(&tmp.join(index_name), &bytes)?;
    let (size, checksum) = format::file_checksum(&tmp.join(index_name))?;
    files.push(FileRecord {
        path: index_name.into(),
        size,
        checksum,
        shard_of: None,
    });
    Ok(files)
}

/// What one rank wrote, as recorded in its marker file.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct RankMarker {
    rank: usize,
    components: BTreeMap<String, MarkerEntry>,
    /// Checksums of REPLICATED components computed on ranks > 0 (not written).
    replicated: BTreeMap<String, String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MarkerEntry {
    sharing: Sharing,
    files: Vec<FileRecord>,
    info: Value,
}

fn marker_name(rank: usize) -> String {
    format!(".rank-{rank}.json")
}

/// Writes this rank's part of checkpoint `job.step`; on rank 0 also merges and commits.
fn write_job(opts: &Options, job: &Job) -> Result<PathBuf> {
    let root = opts.root();
    let final_dir = root.join(format!("{}{}", fsutil::PREFIX, job.step));
    let tmp = root.join(format!(".{}{}.tmp", fsutil::PREFIX, job.step));
    if opts.world_size == 1 && tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;

    let mut marker = RankMarker {
        rank: opts.rank,
        ..Default::default()
    };
    if opts.rank == 0 {
        let files = write_model(opts, &tmp, &job.model)?;
        marker.components.insert(
            "model".into(),
            MarkerEntry {
                sharing: Sharing::Global,
                files,
                info: Value::Null,
            },
        );
    }
    for c in &job.components {
        match opts.writes(c.sharing) {
            Some((suffix, shard_of)) => {
                let name = format!("{}{suffix}.safetensors", c.name);
                let mut rec = format::write_file(
                    &tmp.join(&name),
                    &name,
                    &format::raw_views(&c.tensors)?,
                    &c.file_metadata,
                )?;
                rec.shard_of = shard_of;
                let entry = MarkerEntry {
                    sharing: c.sharing,
                    files: vec![rec],
                    info: c.info.clone(),
                };
                marker.components.insert(c.name.clone(), entry);
            }
            None => {
                let (_, checksum) = format::write_to(
                    &mut std::io::sink(),
                    &format::raw_views(&c.tensors)?,
                    &c.file_metadata,
                )
                .map_err(|e| CoreError::Checkpoint(e.to_string()))?;
                marker.replicated.insert(c.name.clone(), checksum);
            }
        }
    }
    let bytes = serde_json::to_vec(&marker).map_err(|e| CoreError::Checkpoint(e.to_string()))?;
    fsutil::write_atomic(&tmp.join(marker_name(opts.rank)), &bytes)?;
    if opts.rank != 0 {
        return Ok(final_dir);
    }
    let markers = gather_markers(opts, &tmp)?;
    let manifest = merge(opts, job, &final_dir, markers)?;
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CoreError::Checkpoint(e.to_string()))?;
    fsutil::write_synced(&tmp.join(MANIFEST), &text)?;
    for r in 0..opts.world_size {
        let _ = std::fs::remove_file(tmp.join(marker_name(r)));
    }
    fsutil::fsync_dir(&tmp)?;
    commit(&root, &tmp, &final_dir)?;
    let name = format!("{}{}\n", fsutil::PREFIX, job.step);
    fsutil::write_atomic(&root.join(fsutil::LATEST), name.as_bytes())?;
    apply_retention(opts, &root, job.step)?;
    tracing::info!("saved checkpoint {}", final_dir.display());
    Ok(final_dir)
}

/// Renames `tmp` to `final_dir`. An existing committed directory of the same step is moved
/// aside first (rename cannot replace a non-empty directory) and deleted after the commit.
fn commit(root: &Path, tmp: &Path, final_dir: &Path) -> Result<()> {
    let mut old = None;
    if final_dir.exists() {
        let name = final_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let aside = root.join(format!(".{name}.old"));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(final_dir, &aside).map_err(io_err(final_dir))?;
        old = Some(aside);
    }
    std::fs::rename(tmp, final_dir).map_err(io_err(final_dir))?;
    fsutil::fsync_dir(root)?;
    if let Some(aside) = old {
        std::fs::remove_dir_all(&aside).map_err(io_err(&aside))?;
    }
    Ok(())
}

fn gather_markers(opts: &Options, tmp: &Path) -> Result<Vec<RankMarker>> {
    let start = std::time::Instant::now();
    let mut out = Vec::with_capacity(opts.world_size);
    for r in 0..opts.world_size {
        let path = tmp.join(marker_name(r));
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                let m: RankMarker = serde_json::from_slice(&bytes).map_err(|e| {
                    CoreError::Checkpoint(format!(
                        "rank marker '{}' is invalid: {e}",
                        path.display()
                    ))
                })?;
                out.push(m);
                break;
            }
            if start.elapsed() > opts.barrier_timeout {
                return Err(CoreError::Checkpoint(format!(
                    "rank {r} did not finish writing its part of '{}' within {:?}; is every rank calling save() for this step?",
                    tmp.display(),
                    opts.barrier_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(out)
}

fn merge(
    opts: &Options,
    job: &Job,
    final_dir: &Path,
    markers: Vec<RankMarker>,
) -> Result<Manifest> {
    let mut components: BTreeMap<String, ComponentRecord> = BTreeMap::new();
    let mut replicated: Vec<(usize, BTreeMap<String, String>)> = Vec::new();
    for m in markers {
        for (name, entry) in m.components {
            let rec = components.entry(name).or_insert_with(|| ComponentRecord {
                sharing: entry.sharing,
                ranks: Vec::new(),
                size: 0,
                checksum: String::new(),
                files: Vec::new(),
                metadata: entry.info.clone(),
            });
            if entry.sharing == Sharing::PerRank {
                rec.ranks.push(m.rank);
            }
            rec.files.extend(entry.files);
        }
        replicated.push((m.rank, m.replicated));
    }
    for rec in components.values_mut() {
        rec.files.sort_by_key(|f| f.shard_of);
        rec.size = rec.files.iter().map(|f| f.size).sum();
        rec.checksum = combine_checksums(&rec.files);
        if rec.sharing != Sharing::PerRank {
            rec.ranks = (0..opts.world_size).collect();
        }
    }
    if opts.validate_replicated {
        for (rank, sums) in replicated {
            for (name, sum) in sums {
                let Some(rec) = components.get(&name) else {
                    continue;
                };
                if rec.checksum != sum {
                    return Err(CoreError::Checkpoint(format!(
                        "REPLICATED component '{name}' differs between rank 0 ({}) and rank {rank} ({sum}): the replicas are out of sync",
                        rec.checksum
                    )));
                }
            }
        }
    }
    Ok(Manifest {
        format_version: FORMAT_VERSION,
        path: final_dir.display().to_string(),
        step: job.step,
        world_size: opts.world_size,
        timestamp: iso_timestamp_now(),
        glmx_version: env!("CARGO_PKG_VERSION").to_string(),
        torch_version: opts.torch_version.clone(),
        metrics: job.metrics.clone(),
        monitor: opts.monitor.clone(),
        mode: opts
            .monitor
            .as_ref()
            .map(|_| opts.mode.as_str().to_string()),
        components,
    })
}

fn apply_retention(opts: &Options, root: &Path, just_saved: u64) -> Result<()> {
    if opts.save_total_limit.is_none() {
        return Ok(());
    }
    let committed = fsutil::committed(root)?;
    let candidates: Vec<(u64, Option<f64>)> = committed
        .iter()
        .map(|(step, dir)| {
            let metric = match &opts.monitor {
                Some(m) if opts.keep_best > 0 => {
                    Manifest::read(dir).ok().and_then(|man| man.monitored(m))
                }
                _ => None,
            };
            (*step, metric)
        })
        .collect();
    for step in retention::plan_deletions(
        &candidates,
        opts.save_total_limit,
        opts.keep_best,
        opts.mode,
    ) {
        if step == just_saved {
            continue;
        }
        let dir = root.join(format!("{}{step}", fsutil::PREFIX));
        // Rename first so a crash mid-delete never leaves a half-deleted "committed" directory.
        let aside = root.join(format!(".{}{step}.old-deleting", fsutil::PREFIX));
        if let Err(e) = std::fs::rename(&dir, &aside).and_then(|_| std::fs::remove_dir_all(&aside))
        {
            tracing::warn!("cannot delete old checkpoint '{}': {e}", dir.display());
        } else {
            tracing::debug!("retention deleted {}", dir.display());
        }
    }
    Ok(())
}
