//! The safetensors file format, written and read by hand so that a save streams straight from
//! host buffers into the file while computing the checksum in the same pass.
//!
//! Layout: `u64 LE header length | JSON header (padded with spaces to 8 bytes) | tensor bytes`.
//! The header maps each tensor name to `{dtype, shape, data_offsets}` and may hold a
//! `__metadata__` map of strings. Files written here load with `safetensors.torch.load_file`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::{Device, Kind, Tensor};

use crate::error::{CoreError, Result};

/// Headers larger than this are rejected as corrupt (safetensors uses the same bound).
const MAX_HEADER: u64 = 100 * 1024 * 1024;
/// Write and hash in chunks this large: big enough for full disk bandwidth, small enough to
/// keep the checksum data in cache between the hash and the write.
const CHUNK: usize = 8 * 1024 * 1024;

/// One written file as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the checkpoint directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// `crc32:<8 hex digits>` of the whole file.
    pub checksum: String,
    /// The rank (PER_RANK), node (PER_NODE) or group (PER_GROUP) the file belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_of: Option<usize>,
}

/// A tensor ready to be written: contiguous bytes in host memory.
pub struct RawTensor<'a> {
    /// Name inside the file.
    pub name: &'a str,
    /// Element type.
    pub kind: Kind,
    /// Shape.
    pub shape: Vec<i64>,
    /// Row-major bytes.
    pub bytes: &'a [u8],
}

/// The safetensors dtype string of a torch kind, or `None` when safetensors cannot hold it.
pub fn dtype_name(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Bool => "BOOL",
        Kind::Uint8 => "U8",
        Kind::Int8 => "I8",
        Kind::Int16 => "I16",
        Kind::Int => "I32",
        Kind::Int64 => "I64",
        Kind::Half => "F16",
        Kind::BFloat16 => "BF16",
        Kind::Float => "F32",
        Kind::Double => "F64",
        Kind::Float8e5m2 => "F8_E5M2",
        Kind::Float8e4m3fn => "F8_E4M3",
        _ => return None,
    })
}

fn kind_from_name(name: &str) -> Option<Kind> {
    Some(match name {
        "BOOL" => Kind::Bool,
        "U8" => Kind::Uint8,
        "I8" => Kind::Int8,
        "I16" => Kind::Int16,
        "I32" => Kind::Int,
        "I64" => Kind::Int64,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "F32" => Kind::Float,
        "F64" => Kind::Double,
        "F8_E5M2" => Kind::Float8e5m2,
        "F8_E4M3" => Kind::Float8e4m3fn,
        _ => return None,
    })
}

/// The bytes of a contiguous CPU tensor. The caller guarantees both properties.
fn tensor_bytes(tensor: &Tensor) -> &[u8] {
    let len = tensor.numel() * tensor.kind().elt_size_in_bytes();
    if len == 0 {
        return &[];
    }
    // SAFETY: a contiguous CPU tensor owns `numel * elt_size` bytes at `data_ptr`, alive as
    // long as the borrow of `tensor`.
    unsafe { std::slice::from_raw_parts(tensor.data_ptr() as *const u8, len) }
}

fn tensor_bytes_mut(tensor: &mut Tensor) -> &mut [u8] {
    let len = tensor.numel() * tensor.kind().elt_size_in_bytes();
    if len == 0 {
        return &mut [];
    }
    // SAFETY: as in `tensor_bytes`; the tensor was just allocated here, nothing else aliases it.
    unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr() as *mut u8, len) }
}

/// Byte views of named tensors for writing. Every tensor must be a contiguous CPU tensor
/// (the snapshot step guarantees this); anything else is an error, never undefined behaviour.
pub fn raw_views(tensors: &[(String, Tensor)]) -> Result<Vec<RawTensor<'_>>> {
    tensors
        .iter()
        .map(|(name, t)| {
            if t.device() != Device::Cpu || !t.is_contiguous() {
                return Err(CoreError::Checkpoint(format!(
                    "tensor '{name}' must be a contiguous CPU tensor to be written"
                )));
            }
            Ok(RawTensor {
                name,
                kind: t.kind(),
                shape: t.size(),
                bytes: tensor_bytes(t),
            })
        })
        .collect()
}

/// crc32 of `bytes`, formatted as in manifests, hashed on up to `threads` threads (crc32
/// pieces combine exactly). Verifying a memory-mapped file is bound by page faults and memory
/// bandwidth, which a second core nearly doubles.
pub fn checksum_parallel(bytes: &[u8], threads: usize) -> String {
    let threads = threads.max(1);
    if threads == 1 || bytes.len() < (16 << 20) {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(bytes);
        return format_checksum(hasher.finalize());
    }
    let piece = bytes.len().div_ceil(threads);
    let hashers: Vec<crc32fast::Hasher> = std::thread::scope(|scope| {
        let handles: Vec<_> = bytes
            .chunks(piece)
            .map(|part| {
                scope.spawn(move || {
                    let mut hasher = crc32fast::Hasher::new();
                    hasher.update(part);
                    hasher
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut total = crc32fast::Hasher::new();
    for h in &hashers {
        total.combine(h);
    }
    format_checksum(total.finalize())
}

/// Formats a crc32 the way manifests store it.
pub fn format_checksum(crc: u32) -> String {
    format!("crc32:{crc:08x}")
}

fn header_bytes(tensors: &[RawTensor<'_>], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        let meta: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut offset = 0usize;
    for t in tensors {
        let dtype = dtype_name(t.kind).ok_or_else(|| {
            CoreError::Checkpoint(format!(
                "tensor '{}' has dtype {:?}, which safetensors cannot store; convert it (e.g. view_as_real for complex)",
                t.name, t.kind
            ))
        })?;
        let end = offset + t.bytes.len();
        let entry =
            serde_json::json!({ "dtype": dtype, "shape": t.shape, "data_offsets": [offset, end] });
        if header.insert(t.name.to_string(), entry).is_some() {
            return Err(CoreError::Checkpoint(format!(
                "tensor name '{}' appears twice in one file",
                t.name
            )));
        }
        offset = end;
    }
    let mut json = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| CoreError::Checkpoint(format!("cannot encode safetensors header: {e}")))?;
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Streams a safetensors file into `sink`, returning `(size, checksum)`.
pub fn write_to<W: Write>(
    sink: &mut W,
    tensors: &[RawTensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> std::io::Result<(u64, String)> {
    let header = header_bytes(tensors, metadata).map_err(std::io::Error::other)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    sink.write_all(&header)?;
    let mut size = header.len() as u64;
    for t in tensors {
        for chunk in t.bytes.chunks(CHUNK) {
            hasher.update(chunk);
            sink.write_all(chunk)?;
        }
        size += t.bytes.len() as u64;
    }
    Ok((size, format_checksum(hasher.finalize())))
}

/// Writes `path` (created, fully written, fsynced) and returns its record named `rel`.
pub fn write_file(
    path: &Path,
    rel: &str,
    tensors: &[RawTensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<FileRecord> {
    let io = |source| CoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::create(path).map_err(io)?;
    let (size, checksum) = write_to(&mut file, tensors, metadata).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(FileRecord {
        path: rel.to_string(),
        size,
        checksum,
        shard_of: None,
    })
}

/// Tensors and string metadata read back from one file.
pub struct FileContents {
    /// Tensors in file order (by offset).
    pub tensors: Vec<(String, Tensor)>,
    /// The `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

struct Entry {
    name: String,
    kind: Kind,
    shape: Vec<i64>,
    start: u64,
    end: u64,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> CoreError {
    CoreError::Checkpoint(format!(
        "checkpoint file '{}' is corrupt: {what}",
        path.display()
    ))
}

fn parse_header(
    path: &Path,
    json: &[u8],
    data_len: u64,
) -> Result<(Vec<Entry>, BTreeMap<String, String>)> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| corrupt(path, format!("header is not valid JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(corrupt(path, "header is not a JSON object"));
    };
    let mut entries = Vec::new();
    let mut metadata = BTreeMap::new();
    for (name, v) in map {
        if name == "__metadata__" {
            if let Value::Object(m) = v {
                for (k, v) in m {
                    if let Value::String(s) = v {
                        metadata.insert(k, s);
                    }
                }
            }
            continue;
        }
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("");
        let kind = kind_from_name(dtype)
            .ok_or_else(|| corrupt(path, format!("tensor '{name}' has unknown dtype '{dtype}'")))?;
        // Every dimension a non-negative integer that fits i64, the element count not
        // overflowing: a crafted shape can neither wrap around nor reach libtorch.
        let dims = v
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt(path, format!("tensor '{name}' has no shape")))?;
        let shape: Option<Vec<i64>> = dims
            .iter()
            .map(|d| d.as_u64().and_then(|d| i64::try_from(d).ok()))
            .collect();
        let shape = shape.filter(|s| s.len() <= 64).ok_or_else(|| {
            corrupt(
                path,
                format!(
                    "tensor '{name}' has an invalid shape {dims:?} (non-negative integers only)"
                ),
            )
        })?;
        let bytes = shape
            .iter()
            .try_fold(kind.elt_size_in_bytes() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            });
        let offs: Option<Vec<u64>> = v
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(Value::as_u64).collect())
            .unwrap_or_default();
        let Some([start, end]) = offs.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok()) else {
            return Err(corrupt(
                path,
                format!("tensor '{name}' has no valid data_offsets (two non-negative integers)"),
            ));
        };
        if end < start || bytes != Some(end - start) || end > data_len {
            return Err(corrupt(
                path,
                format!("tensor '{name}' has inconsistent offsets [{start}, {end}]"),
            ));
        }
        entries.push(Entry {
            name,
            kind,
            shape,
            start,
            end,
        });
    }
    entries.sort_by_key(|e| (e.start, e.end));
    let mut cursor = 0;
    for e in &entries {
        if e.start != cursor {
            return Err(corrupt(
                path,
                format!("tensor '{}' does not follow the previous one", e.name),
            ));
        }
        cursor = e.end;
    }
    if cursor != data_len {
        return Err(corrupt(
            path,
            format!("data section is {data_len} bytes but tensors cover {cursor}"),
        ));
    }
    Ok((entries, metadata))
}

/// Reads a whole safetensors file into freshly allocated CPU tensors. With `expected`, the
/// size and checksum must match, otherwise the error names the file (truncated or altered).
pub fn read_file(path: &Path, expected: Option<&FileRecord>) -> Result<FileContents> {
    let io = |source| CoreError::Io {
        path: path.display().to_string(),
        source,
    };
    // Checked before opening: opening a FIFO for reading would block.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(corrupt(path, "not a regular file"));
    }
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if let Some(rec) = expected {
        if rec.size != size {
            return Err(corrupt(
                path,
                format!(
                    "size is {size} bytes, the manifest says {} (truncated or altered)",
                    rec.size
                ),
            ));
        }
    }
    let mut len_buf = [0u8; 8];
    file.read_exact(&mut len_buf)
        .map_err(|_| corrupt(path, "shorter than 8 bytes"))?;
    let header_len = u64::from_le_bytes(len_buf);
    if header_len > MAX_HEADER || 8 + header_len > size {
        return Err(corrupt(
            path,
            format!("header length {header_len} does not fit in a {size}-byte file"),
        ));
    }
    let mut json = vec![0u8; header_len as usize];
    file.read_exact(&mut json).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_buf);
    hasher.update(&json);
    let (entries, metadata) = parse_header(path, &json, size - 8 - header_len)?;
    let mut tensors = Vec::with_capacity(entries.len());
    for e in entries {
        let mut t = Tensor::f_empty(e.shape.as_slice(), (e.kind, Device::Cpu))?;
        let bytes = tensor_bytes_mut(&mut t);
        debug_assert_eq!(bytes.len() as u64, e.end - e.start);
        for chunk in bytes.chunks_mut(CHUNK) {
            file.read_exact(chunk)
                .map_err(|_| corrupt(path, format!("truncated inside tensor '{}'", e.name)))?;
            if expected.is_some() {
                hasher.update(chunk);
            }
        }
        tensors.push((e.name, t));
    }
    if let Some(rec) = expected {
        let got = format_checksum(hasher.finalize());
        if got != rec.checksum {
            return Err(corrupt(
                path,
                format!(
                    "checksum {got} does not match the manifest's {} (file altered)",
                    rec.checksum
                ),
            ));
        }
    }
    Ok(FileContents { tensors, metadata })
}

/// Checksum of a file on disk (streaming), for verifying non-safetensors files like indexes.
pub fn file_checksum(path: &Path) -> Result<(u64, String)> {
    let io = |source| CoreError::Io {
        path: path.display().to_string(),
        source,
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(corrupt(path, "not a regular file"));
    }
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, format_checksum(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detects_alteration() {
        let dir = std::env::temp_dir().join(format!("glmx-fmt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.safetensors");
        let a = Tensor::arange(10, (Kind::Float, Device::Cpu));
        let b = Tensor::from_slice(&[1i64, 2, 3]).view([3, 1]);
        let raws = [
            RawTensor {
                name: "a",
                kind: Kind::Float,
                shape: vec![10],
                bytes: tensor_bytes(&a),
            },
            RawTensor {
                name: "b",
                kind: Kind::Int64,
                shape: vec![3, 1],
                bytes: tensor_bytes(&b),
            },
        ];
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let rec = write_file(&path, "a.safetensors", &raws, &meta).unwrap();
        let back = read_file(&path, Some(&rec)).unwrap();
        assert_eq!(back.metadata, meta);
        assert_eq!(back.tensors.len(), 2);
        assert!(back.tensors[0].1.equal(&a));
        assert!(back.tensors[1].1.equal(&b));
        // Flip one data byte: the checksum names the file.
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let err = read_file(&path, Some(&rec)).err().unwrap().to_string();
        assert!(
            err.contains("a.safetensors") && err.contains("checksum"),
            "{err}"
        );
        // Truncate: the size check names the file.
        std::fs::write(&path, &raw[..raw.len() - 4]).unwrap();
        let err = read_file(&path, Some(&rec)).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn crafted(dir: &Path, name: &str, header: &str, data_len: usize) -> std::path::PathBuf {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data_len));
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn crafted_headers_are_refused() {
        let dir = std::env::temp_dir().join(format!("glmx-fmt-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}}"#,
                16,
                "shape",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[2,"x"],"data_offsets":[0,8]}}"#,
                8,
                "shape",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#,
                16,
                "offsets",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                12,
                "follow",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#,
                8,
                "data_offsets",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                8,
                "offsets",
            ),
            (
                r#"{"a":{"dtype":"float32","shape":[2],"data_offsets":[0,8]}}"#,
                8,
                "dtype",
            ),
            (r#"[1,2]"#, 0, "object"),
        ];
        for (i, (header, len, want)) in cases.iter().enumerate() {
            let path = crafted(&dir, &format!("c{i}.safetensors"), header, *len);
            let err = read_file(&path, None).err().unwrap();
            let msg = err.to_string();
            assert!(matches!(err, CoreError::Checkpoint(_)), "{msg}");
            assert!(msg.contains(want) && msg.contains("corrupt"), "{i}: {msg}");
        }
        // A FIFO is refused without blocking.
        let fifo = dir.join("fifo.safetensors");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let msg = read_file(&fifo, None).err().unwrap().to_string();
            assert!(msg.contains("not a regular file"), "{msg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
