//! Scanning an ImageFolder split: `ROOT/SPLIT/CLASS/**/*.{jpg,jpeg,png}`, classes = sorted
//! folder names, samples in class-major order and, within a class, in torchvision's order.

use std::path::{Path, PathBuf};

use crate::error::CoreError;

/// File name extensions read as images (case-insensitive); other files are ignored.
pub const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The files and labels of one split.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    /// The split directory (`ROOT/SPLIT`).
    pub dir: PathBuf,
    /// Class names (sorted folder names, or the expected list given to [`ImageFolder::scan`]).
    pub classes: Vec<String>,
    /// Image files, class-major; within a class by directory path, then file name.
    pub files: Vec<PathBuf>,
    /// Class index of each file.
    pub labels: Vec<u32>,
}

fn io_err(path: &Path, source: std::io::Error) -> CoreError {
    CoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, CoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        // Follow symlinks: a class folder or an image may be a link.
        let is_dir = path.is_dir();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        out.push((name, path, is_dir));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The images of one class folder and its subfolders, in torchvision's `ImageFolder` order
/// (directories sorted by path, files by name within each), so sample i is the same image in
/// both. Links are followed, as there; a link back to an enclosing folder is not (the walk
/// would never end).
fn images_under(class_dir: &Path) -> Result<Vec<PathBuf>, CoreError> {
    let mut dirs: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut todo: Vec<(String, PathBuf, Vec<PathBuf>)> =
        vec![(String::new(), class_dir.to_path_buf(), Vec::new())];
    while let Some((rel, dir, mut ancestors)) = todo.pop() {
        let real = std::fs::canonicalize(&dir).map_err(|e| io_err(&dir, e))?;
        if ancestors.contains(&real) {
            continue;
        }
        ancestors.push(real);
        let mut files = Vec::new();
        for (name, path, is_dir) in sorted_entries(&dir)? {
            if is_dir {
                let sub = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                todo.push((sub, path, ancestors.clone()));
            } else if is_image(&name) {
                files.push(path);
            }
        }
        dirs.push((rel, files));
    }
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(dirs.into_iter().flat_map(|(_, files)| files).collect())
}

fn is_image(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

impl ImageFolder {
    /// Scans `root/split`. With `expected`, the split must hold exactly those class folders
    /// (the training split's classes), so labels mean the same in every split.
    pub fn scan(root: &str, split: &str, expected: Option<&[String]>) -> Result<Self, CoreError> {
        let dir = Path::new(root).join(split);
        if !dir.is_dir() {
            return Err(CoreError::Data(format!(
                "image folder split '{}' not found: expected class folders under {}",
                split,
                dir.display()
            )));
        }
        let class_dirs: Vec<(String, PathBuf)> = sorted_entries(&dir)?
            .into_iter()
            .filter(|(_, _, d)| *d)
            .map(|(n, p, _)| (n, p))
            .collect();
        if class_dirs.is_empty() {
            return Err(CoreError::Data(format!(
                "no class folders under {} (expected {}/CLASS/*.jpg|*.png)",
                dir.display(),
                dir.display()
            )));
        }
        let found: Vec<String> = class_dirs.iter().map(|(n, _)| n.clone()).collect();
        let classes = match expected {
            None => found.clone(),
            Some(want) => {
                let missing: Vec<&String> = want.iter().filter(|c| !found.contains(c)).collect();
                if !missing.is_empty() {
                    return Err(CoreError::Data(format!(
                        "class folder(s) {:?} missing from {} (every split needs the training classes)",
                        missing,
                        dir.display()
                    )));
                }
                let extra: Vec<&String> = found.iter().filter(|c| !want.contains(c)).collect();
                if !extra.is_empty() {
                    return Err(CoreError::Data(format!(
                        "class folder(s) {:?} in {} are not training classes {:?}",
                        extra,
                        dir.display(),
                        want
                    )));
                }
                want.to_vec()
            }
        };
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for (label, class) in classes.iter().enumerate() {
            let cdir = dir.join(class);
            let found = images_under(&cdir)?;
            if found.is_empty() {
                return Err(CoreError::Data(format!(
                    "class folder {} holds no image (.jpg, .jpeg or .png, also in subfolders)",
                    cdir.display()
                )));
            }
            labels.extend(std::iter::repeat_n(label as u32, found.len()));
            files.extend(found);
        }
        if files.len() as u64 > u32::MAX as u64 {
            return Err(CoreError::Data(format!(
                "{} holds more than 2^32 images",
                dir.display()
            )));
        }
        Ok(ImageFolder {
            dir,
            classes,
            files,
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> u64 {
        self.files.len() as u64
    }

    /// Always false: scanning fails on an empty split.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
