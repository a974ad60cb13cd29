//! Durable file-system steps: fsync of files and directories, atomic pointer updates, and the
//! scan that tells committed checkpoints from leftovers of a crash.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::manifest::MANIFEST;
use crate::error::{CoreError, Result};

/// Name of the pointer file (inside `checkpoints/`) holding the newest committed directory name.
pub const LATEST: &str = "latest";
/// Prefix of committed checkpoint directories.
pub const PREFIX: &str = "checkpoint-";

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Makes a rename or create inside `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the parent.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    fsync_dir(parent)
}

/// Writes a small file and fsyncs it (inside a temp dir that is renamed later).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Step encoded in a committed directory name, `checkpoint-<step>`.
pub fn parse_step(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// Committed checkpoints under `root`, sorted by step. A directory counts only if its name is
/// final (renamed from the temp name) and it holds a manifest: the rename is the commit.
pub fn committed(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(root)(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(parse_step) else {
            continue;
        };
        let path = entry.path();
        if path.join(MANIFEST).is_file() {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes temp directories and pointer temp files left behind by a crash. Returns how many.
pub fn cleanup_stale(root: &Path) -> Result<usize> {
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let stale = (name.starts_with(".checkpoint-")
            && (name.ends_with(".tmp") || name.contains(".old")))
            || name.starts_with(&format!(".{LATEST}.tmp-"));
        if !stale {
            continue;
        }
        let path = entry.path();
        let res = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match res {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(
                "cannot remove stale checkpoint leftover '{}': {e}",
                path.display()
            ),
        }
    }
    Ok(removed)
}

/// Reads the `latest` pointer: the directory it names, if that one is committed.
pub fn read_latest(root: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(root.join(LATEST)).ok()?;
    let name = text.trim();
    parse_step(name)?;
    let dir = root.join(name);
    dir.join(MANIFEST).is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_ignores_uncommitted() {
        let root = std::env::temp_dir().join(format!("glmx-fsutil-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (name, manifest) in [
            ("checkpoint-5", true),
            ("checkpoint-12", true),
            ("checkpoint-7", false),
            (".checkpoint-20.tmp", true),
        ] {
            fs::create_dir_all(root.join(name)).unwrap();
            if manifest {
                fs::write(root.join(name).join(MANIFEST), "{}").unwrap();
            }
        }
        let steps: Vec<u64> = committed(&root)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(steps, vec![5, 12]);
        assert_eq!(cleanup_stale(&root).unwrap(), 1);
        assert!(!root.join(".checkpoint-20.tmp").exists());
        write_atomic(&root.join(LATEST), b"checkpoint-12\n").unwrap();
        assert_eq!(read_latest(&root), Some(root.join("checkpoint-12")));
        write_atomic(&root.join(LATEST), b"checkpoint-7\n").unwrap();
        assert_eq!(read_latest(&root), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
