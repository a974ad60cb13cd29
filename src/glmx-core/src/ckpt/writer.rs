//! The background half of a save: write this rank's files, gather the other ranks', write the
//! manifest and commit (see the protocol in [`super::coordinator`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::coordinator::{Job, Options};
use super::format::{self, FileRecord};
use super::fsutil::{self, io_err};
use super::manifest::{
    combine_checksums, iso_timestamp_now, ComponentRecord, Manifest, Sharing, FORMAT_VERSION,
    MANIFEST,
};
use super::retention;
use super::snapshot::NamedTensors;
use crate::error::{CoreError, Result};

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
    /// `Options::session` of the writer.
    #[serde(default)]
    session: String,
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
pub(crate) fn write_job(opts: &Options, job: &Job) -> Result<PathBuf> {
    let root = opts.root();
    let final_dir = root.join(format!("{}{}", fsutil::PREFIX, job.step));
    let tmp = root.join(format!(".{}{}.tmp", fsutil::PREFIX, job.step));
    if opts.world_size == 1 && tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    // A marker of ours left by an interrupted launch must not vouch for files rewritten now.
    let _ = std::fs::remove_file(tmp.join(marker_name(opts.rank)));

    let mut marker = RankMarker {
        rank: opts.rank,
        session: opts.session.clone(),
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
    let removed = fsutil::remove_tmp_before(&root, job.step);
    if removed > 0 {
        tracing::info!("removed {removed} incomplete checkpoint(s) of an interrupted run");
    }
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
        let mut foreign: Option<String> = None;
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                let m: RankMarker = serde_json::from_slice(&bytes).map_err(|e| {
                    CoreError::Checkpoint(format!(
                        "rank marker '{}' is invalid: {e}",
                        path.display()
                    ))
                })?;
                if m.session == opts.session && m.rank == r {
                    out.push(m);
                    break;
                }
                // a leftover of an interrupted launch: wait for this launch's rank r
                foreign = Some(m.session);
            }
            if start.elapsed() > opts.barrier_timeout {
                let hint = match &foreign {
                    Some(other) => format!(
                        " (its marker there has session '{other}', this rank's is '{}': a leftover of an interrupted launch, or ranks that disagree on the launch environment; pass the same session= to every rank)",
                        opts.session
                    ),
                    None => String::new(),
                };
                return Err(CoreError::Checkpoint(format!(
                    "rank {r} did not finish writing its part of '{}' within {:?}; is every rank calling save() for this step?{hint}",
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
