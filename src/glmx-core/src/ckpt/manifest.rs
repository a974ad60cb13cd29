//! `checkpoint_manifest.json`: what a checkpoint holds and how to verify it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::format::FileRecord;
use crate::error::{CoreError, Result};

/// File name of the manifest inside a checkpoint directory.
pub const MANIFEST: &str = "checkpoint_manifest.json";
/// Largest manifest read, in bytes (a real one is a few KB per component).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// Bumped when the layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Who writes a component and how many copies exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Sharing {
    /// One copy, written by rank 0 (model weights, trainer state).
    Global,
    /// Identical on every rank (DDP optimizer state): written once by rank 0, optionally
    /// cross-checked by checksum.
    Replicated,
    /// One file per rank (RNG state, loader position).
    PerRank,
    /// One file per group of `group_size` consecutive ranks, written by the group leader.
    PerGroup,
    /// One file per node, written by local rank 0.
    PerNode,
}

impl Sharing {
    /// Parses `GLOBAL`, `per_rank`, ... (case-insensitive).
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "GLOBAL" => Self::Global,
            "REPLICATED" => Self::Replicated,
            "PER_RANK" => Self::PerRank,
            "PER_GROUP" => Self::PerGroup,
            "PER_NODE" => Self::PerNode,
            _ => {
                return Err(CoreError::Checkpoint(format!(
                    "unknown sharing pattern '{text}'; expected one of GLOBAL, REPLICATED, PER_RANK, PER_GROUP, PER_NODE"
                )))
            }
        })
    }

    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "GLOBAL",
            Self::Replicated => "REPLICATED",
            Self::PerRank => "PER_RANK",
            Self::PerGroup => "PER_GROUP",
            Self::PerNode => "PER_NODE",
        }
    }
}

/// One component (model, optimizer, rng, ...) of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// Sharing pattern.
    pub sharing: Sharing,
    /// Ranks whose state this component holds (every rank for GLOBAL/REPLICATED).
    pub ranks: Vec<usize>,
    /// Total bytes over all files.
    pub size: u64,
    /// The file checksum, or a checksum over the file checksums when there are several.
    pub checksum: String,
    /// Files of this component, relative to the checkpoint directory.
    pub files: Vec<FileRecord>,
    /// Free-form metadata given by the caller (e.g. optimizer class name).
    #[serde(default)]
    pub metadata: Value,
}

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version.
    pub format_version: u32,
    /// The checkpoint directory at save time.
    pub path: String,
    /// Global step.
    pub step: u64,
    /// Number of ranks that saved.
    pub world_size: usize,
    /// UTC time of the commit, ISO 8601.
    pub timestamp: String,
    /// glmx version.
    pub glmx_version: String,
    /// torch version.
    pub torch_version: String,
    /// Metrics at save time (used for best-k retention and `resolve("best")`).
    #[serde(default)]
    pub metrics: Map<String, Value>,
    /// Monitored metric name and mode (`min`/`max`) when best-k tracking is on.
    #[serde(default)]
    pub monitor: Option<String>,
    /// `min` or `max`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Components by name; `model` is always present.
    pub components: BTreeMap<String, ComponentRecord>,
}

impl Manifest {
    /// Reads and validates the manifest of the checkpoint directory `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = super::fsutil::read_regular(&path, MAX_MANIFEST_BYTES)?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
            CoreError::Checkpoint(format!("manifest '{}' is invalid: {e}", path.display()))
        })?;
        manifest.validate(&path)?;
        Ok(manifest)
    }

    /// Structural checks that a reader relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |what: String| {
            CoreError::Checkpoint(format!("manifest '{}' is invalid: {what}", path.display()))
        };
        if self.format_version > FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} is newer than this glmx understands ({FORMAT_VERSION}); upgrade glmx",
                self.format_version
            )));
        }
        if self.world_size == 0 {
            return Err(bad("world_size is 0".into()));
        }
        if !self.components.contains_key("model") {
            return Err(bad(
                "no 'model' component: model weights are required".into()
            ));
        }
        for (name, c) in &self.components {
            if c.files.is_empty() {
                return Err(bad(format!("component '{name}' lists no files")));
            }
            if c.files.iter().map(|f| f.size).sum::<u64>() != c.size {
                return Err(bad(format!(
                    "component '{name}' size does not match its files"
                )));
            }
            if c.files
                .iter()
                .any(|f| f.path.contains("..") || f.path.starts_with('/'))
            {
                return Err(bad(format!(
                    "component '{name}' has a file outside the checkpoint"
                )));
            }
        }
        Ok(())
    }

    /// The monitored metric value of this checkpoint, if any.
    pub fn monitored(&self, monitor: &str) -> Option<f64> {
        self.metrics.get(monitor).and_then(Value::as_f64)
    }
}

/// Combined checksum of several files (order-sensitive).
pub fn combine_checksums(files: &[FileRecord]) -> String {
    if let [only] = files {
        return only.checksum.clone();
    }
    let mut hasher = crc32fast::Hasher::new();
    for f in files {
        hasher.update(f.checksum.as_bytes());
    }
    super::format::format_checksum(hasher.finalize())
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date library.
pub fn iso_timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_parses_and_prints() {
        for s in ["GLOBAL", "REPLICATED", "PER_RANK", "PER_GROUP", "PER_NODE"] {
            assert_eq!(Sharing::parse(s).unwrap().as_str(), s);
        }
        assert!(Sharing::parse("per_rank").is_ok());
        assert!(Sharing::parse("sometimes")
            .unwrap_err()
            .to_string()
            .contains("PER_NODE"));
    }

    #[test]
    fn timestamp_is_iso() {
        let ts = iso_timestamp_now();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.starts_with("20") && ts.ends_with('Z') && &ts[10..11] == "T");
    }
}
