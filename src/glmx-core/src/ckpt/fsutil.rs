//! Durable file-system steps: fsync of files and directories, atomic pointer updates, and the
//! scan that tells committed checkpoints from leftovers of a crash.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

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

/// Step of a temp directory name, `.checkpoint-<step>.tmp`.
pub fn parse_tmp_step(name: &str) -> Option<u64> {
    parse_step(name.strip_prefix('.')?.strip_suffix(".tmp")?)
}

/// Removes leftovers of a crash that only rank 0 writes: directories moved aside by a commit
/// or by retention (`.checkpoint-<step>.old*`) and `latest` pointer temp files. Temp
/// directories of saves (`.checkpoint-<step>.tmp`) are removed only when `single_rank`: with
/// several ranks another rank may already be writing its part of its first save (ranks start
/// in any order), so those are removed after a later commit ([`remove_tmp_before`]). Returns
/// how many entries were removed.
pub fn cleanup_stale(root: &Path, single_rank: bool) -> Result<usize> {
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let stale = (name.starts_with(".checkpoint-") && name.contains(".old"))
            || (single_rank && parse_tmp_step(&name).is_some())
            || name.starts_with(&format!(".{LATEST}.tmp-"));
        if stale && remove_entry(&entry.path()) {
            removed += 1;
        }
    }
    Ok(removed)
}

/// After checkpoint `step` is committed no rank writes an earlier step of this run: removes
/// temp directories of earlier steps (leftovers of an interrupted run). Returns how many.
pub fn remove_tmp_before(root: &Path, step: u64) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            matches!(name.to_str().and_then(parse_tmp_step), Some(s) if s < step)
        })
        .filter(|e| remove_entry(&e.path()))
        .count()
}

fn remove_entry(path: &Path) -> bool {
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let res = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match res {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(
                "cannot remove stale checkpoint leftover '{}': {e}",
                path.display()
            );
            false
        }
    }
}

/// Reads `path`, which must be a regular file (not a symlink, FIFO or device) of at most
/// `limit` bytes; anything else is a `CoreError::Checkpoint` naming it.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    let bad = |what: String| CoreError::Checkpoint(format!("'{}' {what}", path.display()));
    if !meta.is_file() {
        return Err(bad(
            "is not a regular file (symlinks and special files are refused)".into(),
        ));
    }
    if meta.len() > limit {
        return Err(bad(format!(
            "is {} bytes, over the limit of {limit}",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    if bytes.len() as u64 > limit {
        return Err(bad(format!("grew over the limit of {limit} bytes")));
    }
    Ok(bytes)
}

/// `dir/rel` for a file a manifest lists: `rel` must be relative without `..`, no component
/// below `dir` may be a symlink, and the file must be a regular file. A crafted checkpoint
/// therefore cannot make a reader follow a link out of its directory or block on a FIFO.
pub fn file_inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    let bad = |what: &str| {
        CoreError::Checkpoint(format!(
            "checkpoint '{}' lists file '{rel}', which {what}",
            dir.display()
        ))
    };
    let mut path = dir.to_path_buf();
    for comp in Path::new(rel).components() {
        match comp {
            Component::Normal(part) => path.push(part),
            _ => return Err(bad("is not a plain relative path inside it")),
        }
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(bad("is (or lies under) a symlink; symlinks are refused"))
            }
            Ok(_) => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    if path == dir {
        return Err(bad("is empty"));
    }
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(bad("is not a regular file"));
    }
    Ok(path)
}

/// Reads the `latest` pointer: the directory it names, if that one is committed.
pub fn read_latest(root: &Path) -> Option<PathBuf> {
    let bytes = read_regular(&root.join(LATEST), 4096).ok()?;
    let text = String::from_utf8(bytes).ok()?;
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
        // Several ranks: a temp directory may be another rank's save in progress.
        assert_eq!(cleanup_stale(&root, false).unwrap(), 0);
        assert!(root.join(".checkpoint-20.tmp").exists());
        assert_eq!(remove_tmp_before(&root, 20), 0);
        assert_eq!(remove_tmp_before(&root, 21), 1);
        fs::create_dir_all(root.join(".checkpoint-20.tmp")).unwrap();
        assert_eq!(cleanup_stale(&root, true).unwrap(), 1);
        assert!(!root.join(".checkpoint-20.tmp").exists());
        write_atomic(&root.join(LATEST), b"checkpoint-12\n").unwrap();
        assert_eq!(read_latest(&root), Some(root.join("checkpoint-12")));
        write_atomic(&root.join(LATEST), b"checkpoint-7\n").unwrap();
        assert_eq!(read_latest(&root), None);
        // Files a manifest lists: symlinks and paths leaving the directory are refused.
        let dir = root.join("checkpoint-12");
        fs::write(dir.join("a.safetensors"), b"x").unwrap();
        assert!(file_inside(&dir, "a.safetensors").is_ok());
        std::os::unix::fs::symlink("/etc/hostname", dir.join("b.safetensors")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("sub")).unwrap();
        for rel in [
            "b.safetensors",
            "sub/hostname",
            "../checkpoint-5/x",
            "/etc/hostname",
            "",
        ] {
            assert!(file_inside(&dir, rel).is_err(), "{rel}");
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
