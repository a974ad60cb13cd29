//! Finding and reading committed checkpoints: `last`, `best` or a path; checksums verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::coordinator::{as_ckpt, Coordinator};
use super::format;
use super::fsutil;
use super::manifest::{Manifest, Sharing, MANIFEST};
use super::retention::{self, Mode};
use super::snapshot::NamedTensors;
use crate::error::{CoreError, Result};

/// One component read back.
pub struct LoadedComponent {
    /// Component name.
    pub name: String,
    /// Its sharing pattern.
    pub sharing: Sharing,
    /// Its tensors (this rank's shard for PER_RANK/PER_NODE/PER_GROUP).
    pub tensors: NamedTensors,
    /// The file's `__metadata__` strings.
    pub file_metadata: BTreeMap<String, String>,
    /// The manifest metadata of the component.
    pub info: Value,
}

/// One file to read for a load, already checked against the manifest's layout.
pub struct FilePlan {
    /// Component name (`model` for weights and the shard index).
    pub component: String,
    /// Its sharing pattern.
    pub sharing: Sharing,
    /// Absolute path.
    pub path: PathBuf,
    /// Expected size and checksum.
    pub record: format::FileRecord,
    /// Manifest metadata of the component.
    pub info: Value,
}

/// What a load reads: the resolved directory, its manifest and this rank's files.
pub struct LoadPlan {
    /// The committed directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Files to read, model first.
    pub files: Vec<FilePlan>,
    /// Optional components requested or listed but absent (already warned).
    pub skipped: Vec<String>,
}

/// A checkpoint read back.
pub struct Loaded {
    /// The committed directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Model weights.
    pub model: NamedTensors,
    /// Other components, in manifest order.
    pub components: Vec<LoadedComponent>,
    /// Optional components that were requested or listed but not found (already warned).
    pub skipped: Vec<String>,
}

fn err(msg: String) -> CoreError {
    CoreError::Checkpoint(msg)
}

impl Coordinator {
    /// Committed checkpoints, oldest first, with their manifests.
    pub fn list(&self) -> Result<Vec<(PathBuf, Manifest)>> {
        let mut out = Vec::new();
        for (_, dir) in fsutil::committed(&self.opts.root())? {
            match Manifest::read(&dir) {
                Ok(m) => out.push((dir, m)),
                Err(e) => tracing::warn!("skipping checkpoint with an unreadable manifest: {e}"),
            }
        }
        Ok(out)
    }

    /// The directory of `which`: `"last"` (the `latest` pointer, falling back to the highest
    /// committed step), `"best"` (by the monitored metric) or a path (absolute, relative to the
    /// working directory, or a directory name under `checkpoints/`).
    pub fn resolve(&self, which: &str) -> Result<PathBuf> {
        let root = self.opts.root();
        match which {
            "last" | "latest" => {
                if let Some(dir) = fsutil::read_latest(&root) {
                    return Ok(dir);
                }
                let committed = fsutil::committed(&root)?;
                match committed.last() {
                    Some((_, dir)) => {
                        if root.join(fsutil::LATEST).exists() {
                            tracing::warn!(
                                "'latest' pointer in {} is stale; using {}",
                                root.display(),
                                dir.display()
                            );
                        }
                        Ok(dir.clone())
                    }
                    None => Err(err(format!(
                        "no committed checkpoint in '{}' to resume from",
                        root.display()
                    ))),
                }
            }
            "best" => self.resolve_best(&root),
            path => {
                let p = Path::new(path);
                let dir = if p.exists() {
                    p.to_path_buf()
                } else {
                    root.join(path)
                };
                if !dir.is_dir() {
                    return Err(err(format!(
                        "checkpoint '{path}' not found (looked at '{}' and '{}'); use \"last\", \"best\" or a checkpoint directory",
                        p.display(),
                        dir.display()
                    )));
                }
                if !dir.join(MANIFEST).is_file() {
                    return Err(err(format!(
                        "'{}' is not a committed checkpoint (no {MANIFEST}); it may be an interrupted save",
                        dir.display()
                    )));
                }
                Ok(dir)
            }
        }
    }

    fn resolve_best(&self, root: &Path) -> Result<PathBuf> {
        let listed = self.list()?;
        let newest = listed.last().map(|(_, m)| m);
        let monitor = self
            .opts
            .monitor
            .clone()
            .or_else(|| newest.and_then(|m| m.monitor.clone()))
            .ok_or_else(|| {
                err(
                    "\"best\" needs a monitored metric: pass monitor= to the CheckpointManager"
                        .into(),
                )
            })?;
        let mode = if self.opts.monitor.is_some() {
            self.opts.mode
        } else {
            newest
                .and_then(|m| m.mode.as_deref())
                .and_then(Mode::parse)
                .unwrap_or(Mode::Min)
        };
        let candidates: Vec<(u64, Option<f64>)> = listed
            .iter()
            .map(|(_, m)| (m.step, m.monitored(&monitor)))
            .collect();
        let best = retention::best_steps(&candidates, 1, mode);
        let step = best.first().ok_or_else(|| {
            err(format!(
                "no committed checkpoint in '{}' has the metric '{monitor}'",
                root.display()
            ))
        })?;
        listed
            .into_iter()
            .find(|(_, m)| m.step == *step)
            .map(|(dir, _)| dir)
            .ok_or_else(|| err(format!("best checkpoint step {step} vanished")))
    }

    /// Reads checkpoint `which` (see [`Self::resolve`]). `only` selects components (the model
    /// is always read); `None` reads all. With `verify`, every file's size and checksum must
    /// match the manifest.
    pub fn load(&self, which: &str, only: Option<&[String]>, verify: bool) -> Result<Loaded> {
        let dir = self.resolve(which)?;
        self.load_dir(&dir, only, verify)
            .map_err(|e| as_ckpt("", e))
    }

    /// Resolves `which` and selects this rank's files without reading them (the Python side
    /// memory-maps them). Applies the same checks as [`Self::load`] except checksums.
    pub fn plan(&self, which: &str, only: Option<&[String]>) -> Result<LoadPlan> {
        let dir = self.resolve(which)?;
        self.plan_dir(&dir, only).map_err(|e| as_ckpt("", e))
    }

    fn plan_dir(&self, dir: &Path, only: Option<&[String]>) -> Result<LoadPlan> {
        let manifest = Manifest::read(dir)?;
        let mut skipped = Vec::new();
        let names: Vec<String> = match only {
            Some(list) => {
                for n in list {
                    if n != "model" && !manifest.components.contains_key(n) {
                        tracing::warn!(
                            "checkpoint '{}' has no component '{n}'; skipping it",
                            dir.display()
                        );
                        skipped.push(n.clone());
                    }
                }
                list.iter()
                    .filter(|n| *n != "model" && manifest.components.contains_key(*n))
                    .cloned()
                    .collect()
            }
            None => manifest
                .components
                .keys()
                .filter(|n| *n != "model")
                .cloned()
                .collect(),
        };
        let sharded = names
            .iter()
            .filter_map(|n| manifest.components.get(n))
            .any(|c| !matches!(c.sharing, Sharing::Global | Sharing::Replicated));
        if sharded && manifest.world_size != self.opts.world_size {
            return Err(err(format!(
                "checkpoint '{}' was saved with world_size={} but this run has world_size={}; its per-rank state (rng, loader) cannot be mapped. Resume with the same number of ranks, or load only the weights (components=[])",
                dir.display(),
                manifest.world_size,
                self.opts.world_size
            )));
        }
        let mut files = Vec::new();
        let model_rec = &manifest.components["model"];
        for f in &model_rec.files {
            let path = match fsutil::file_inside(dir, &f.path) {
                Ok(path) => path,
                Err(CoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(err(format!(
                        "model weights missing: '{}' is listed in the manifest but does not exist",
                        dir.join(&f.path).display()
                    )));
                }
                Err(e) => return Err(e),
            };
            files.push(FilePlan {
                component: "model".into(),
                sharing: Sharing::Global,
                path,
                record: f.clone(),
                info: Value::Null,
            });
        }
        for name in names {
            let rec = &manifest.components[&name];
            let shard = self.opts.shard_for(rec.sharing);
            let Some(f) = rec.files.iter().find(|f| f.shard_of == shard) else {
                tracing::warn!(
                    "checkpoint '{}' has no '{name}' file for this rank; skipping it",
                    dir.display()
                );
                skipped.push(name);
                continue;
            };
            let path = match fsutil::file_inside(dir, &f.path) {
                Ok(path) => path,
                Err(CoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    tracing::warn!(
                        "optional component '{name}' is missing from '{}' ({}); skipping it",
                        dir.display(),
                        f.path
                    );
                    skipped.push(name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            files.push(FilePlan {
                component: name,
                sharing: rec.sharing,
                path,
                record: f.clone(),
                info: rec.metadata.clone(),
            });
        }
        Ok(LoadPlan {
            dir: dir.to_path_buf(),
            manifest,
            files,
            skipped,
        })
    }

    fn load_dir(&self, dir: &Path, only: Option<&[String]>, verify: bool) -> Result<Loaded> {
        let plan = self.plan_dir(dir, only)?;
        let mut model = Vec::new();
        let mut components = Vec::new();
        for f in plan.files {
            let expected = verify.then_some(&f.record);
            if !f.record.path.ends_with(".safetensors") {
                let (size, checksum) = format::file_checksum(&f.path)?;
                if verify && (size != f.record.size || checksum != f.record.checksum) {
                    return Err(err(format!(
                        "checkpoint file '{}' is corrupt: size/checksum differ from the manifest",
                        f.path.display()
                    )));
                }
                continue;
            }
            let contents = format::read_file(&f.path, expected)?;
            if f.component == "model" {
                model.extend(contents.tensors);
            } else {
                components.push(LoadedComponent {
                    name: f.component,
                    sharing: f.sharing,
                    tensors: contents.tensors,
                    file_metadata: contents.metadata,
                    info: f.info,
                });
            }
        }
        Ok(Loaded {
            dir: plan.dir,
            manifest: plan.manifest,
            model,
            components,
            skipped: plan.skipped,
        })
    }
}
