//! Reading sequence files into one in-memory arena.
//!
//! Formats, chosen by extension (after stripping `.gz` / `.zst`), else by the first byte:
//! FASTA (`.fa .fasta .fna .fas`), JSONL shards of `{"id", "seq"}` (`.jsonl .json`), and plain
//! text with one sequence per line (anything else). Sequences keep their case (soft-masking).
//! Every malformed line is reported with its file and 1-based line number.
//!
//! Limits (a gzip or zstd bomb must end in a `DataError` naming the file, never an abort on a
//! failed allocation): one line may hold at most `GLMX_DATA_MAX_LINE_BYTES` bytes (default
//! 1 GiB) and all sources together at most `GLMX_DATA_MAX_BYTES` decompressed bytes (default
//! 64 GiB). Memory for the arena is reserved fallibly, so running out of it is an error too.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::CoreError;

/// Default of `GLMX_DATA_MAX_LINE_BYTES`: the longest line (decompressed) a source may have.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 1 << 30;
/// Default of `GLMX_DATA_MAX_BYTES`: decompressed bytes read from all sources together.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 << 30;

/// Size limits of one [`Corpus::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, in bytes (after decompression).
    pub max_line_bytes: u64,
    /// Bytes read from all sources together (after decompression).
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `GLMX_DATA_MAX_LINE_BYTES` / `GLMX_DATA_MAX_BYTES`.
    pub fn from_env() -> Result<Self, CoreError> {
        let get = |name: &str, default: u64| -> Result<u64, CoreError> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(text) => text
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| {
                        CoreError::Data(format!(
                            "{name}={text:?} is not a positive number of bytes"
                        ))
                    }),
            }
        };
        Ok(Self {
            max_line_bytes: get("GLMX_DATA_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)?,
            max_total_bytes: get("GLMX_DATA_MAX_BYTES", DEFAULT_MAX_TOTAL_BYTES)?,
        })
    }
}

enum LineError {
    Io(std::io::Error),
    TooLong,
    Total,
    Memory(usize),
}

/// Appends the next line (with its `\n`) to `buf`; returns its length (0 at the end). Stops
/// with an error as soon as the line exceeds `max_line` or the read total `*read` exceeds
/// `max_total`, before buffering more.
fn read_line_capped(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limits: &Limits,
    read: &mut u64,
) -> Result<usize, LineError> {
    let start = buf.len();
    loop {
        let avail = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if avail.is_empty() {
            return Ok(buf.len() - start);
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        *read += take as u64;
        if *read > limits.max_total_bytes {
            return Err(LineError::Total);
        }
        if (buf.len() - start + take) as u64 > limits.max_line_bytes.saturating_add(2) {
            return Err(LineError::TooLong);
        }
        buf.try_reserve(take).map_err(|_| LineError::Memory(take))?;
        buf.extend_from_slice(&avail[..take]);
        reader.consume(take);
        if done {
            return Ok(buf.len() - start);
        }
    }
}

/// One sequence in the arena.
#[derive(Debug, Clone)]
pub struct Record {
    /// FASTA header's first word, the JSONL `id`, or `file:line` for plain text.
    pub name: String,
    /// Index into [`Corpus::files`].
    pub file: u32,
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset of the sequence in [`Corpus::bytes`].
    pub offset: u64,
    /// Sequence length in bases.
    pub len: u64,
}

/// All sequences of a dataset, concatenated, with their provenance.
#[derive(Debug, Default)]
pub struct Corpus {
    /// The sequences, back to back, case preserved.
    pub bytes: Vec<u8>,
    /// One entry per sequence, in file order.
    pub records: Vec<Record>,
    /// The source paths, in the order given.
    pub files: Vec<String>,
    /// Malformed lines skipped because the caller asked for skipping.
    pub skipped_lines: u64,
    /// Decompressed bytes read so far (checked against [`Limits::max_total_bytes`]).
    read_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Fasta,
    Jsonl,
    Text,
}

#[derive(serde::Deserialize)]
struct JsonRow<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    seq: Cow<'a, str>,
}

/// Builds a `CoreError::Data` naming `file` and `line`.
pub fn data_err(file: &str, line: u64, msg: impl std::fmt::Display) -> CoreError {
    CoreError::Data(format!("{file}:{line}: {msg}"))
}

fn open(path: &str) -> Result<Box<dyn BufRead>, CoreError> {
    let io_err = |e: std::io::Error| CoreError::Data(format!("{path}: cannot open data file: {e}"));
    let file = File::open(path).map_err(io_err)?;
    let reader: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if path.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(io_err)?)
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
}

fn format_of(path: &str) -> Option<Format> {
    let stem = path.trim_end_matches(".gz").trim_end_matches(".zst");
    let ext = Path::new(stem).extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "fa" | "fasta" | "fna" | "fas" | "ffn" => Some(Format::Fasta),
        "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
        "txt" | "seq" | "text" => Some(Format::Text),
        _ => None,
    }
}

/// True for bytes allowed in a sequence: ASCII letters (IUPAC codes; all but ACGT become `[UNK]`).
#[inline]
fn valid_base(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn check_bases(seq: &[u8], file: &str, line: u64) -> Result<(), CoreError> {
    match seq.iter().position(|&b| !valid_base(b)) {
        None => Ok(()),
        Some(col) => Err(data_err(
            file,
            line,
            format!(
                "invalid character {:?} in sequence at column {} (only letters are allowed)",
                char::from(seq[col]),
                col + 1
            ),
        )),
    }
}

fn trim_eol(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &buf[..end]
}

impl Corpus {
    /// Reads every path in order. With `skip_invalid`, malformed lines are counted and skipped
    /// (with a warning) instead of failing.
    ///
    /// Sizes are limited by [`Limits::from_env`]; see [`Self::read_with`].
    pub fn read(paths: &[String], skip_invalid: bool) -> Result<Self, CoreError> {
        Self::read_with(paths, skip_invalid, &Limits::from_env()?)
    }

    /// [`Self::read`] with explicit limits: a line longer than `limits.max_line_bytes` or more
    /// than `limits.max_total_bytes` read in all is a `DataError` naming the file and line.
    pub fn read_with(
        paths: &[String],
        skip_invalid: bool,
        limits: &Limits,
    ) -> Result<Self, CoreError> {
        let mut corpus = Corpus::default();
        if paths.is_empty() {
            return Err(CoreError::Data(
                "no data files given (sources is empty)".into(),
            ));
        }
        for path in paths {
            corpus.read_file(path, skip_invalid, limits)?;
        }
        if corpus.skipped_lines > 0 {
            tracing::warn!(
                skipped = corpus.skipped_lines,
                "skipped malformed lines in data sources"
            );
        }
        Ok(corpus)
    }

    fn read_file(
        &mut self,
        path: &str,
        skip_invalid: bool,
        limits: &Limits,
    ) -> Result<(), CoreError> {
        let file_idx = self.files.len() as u32;
        self.files.push(path.to_string());
        let mut reader = open(path)?;
        let format = match format_of(path) {
            Some(f) => f,
            None => {
                let head = reader
                    .fill_buf()
                    .map_err(|e| data_err(path, 1, format!("cannot read: {e}")))?;
                match head.first() {
                    Some(b'>') => Format::Fasta,
                    Some(b'{') => Format::Jsonl,
                    _ => Format::Text,
                }
            }
        };
        let mut buf = Vec::with_capacity(1 << 16);
        let mut line_no = 0u64;
        let mut open_fasta = false;
        loop {
            buf.clear();
            let n = read_line_capped(&mut reader, &mut buf, limits, &mut self.read_bytes).map_err(
                |e| {
                    let no = line_no + 1;
                    match e {
                        LineError::Io(e) => data_err(path, no, format!("cannot read: {e}")),
                        LineError::TooLong => data_err(
                            path,
                            no,
                            format!(
                                "line longer than {} bytes (decompressed); a corrupt or hostile \
                                 file? Raise GLMX_DATA_MAX_LINE_BYTES if it is genuine",
                                limits.max_line_bytes
                            ),
                        ),
                        LineError::Total => data_err(
                            path,
                            no,
                            format!(
                                "the data sources hold more than {} bytes (decompressed); a \
                                 corrupt or hostile file? Raise GLMX_DATA_MAX_BYTES if genuine",
                                limits.max_total_bytes
                            ),
                        ),
                        LineError::Memory(n) => data_err(
                            path,
                            no,
                            format!("out of memory buffering a line ({n} more bytes)"),
                        ),
                    }
                },
            )?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let line = trim_eol(&buf);
            let res = match format {
                Format::Fasta => self.fasta_line(line, path, file_idx, line_no, &mut open_fasta),
                Format::Jsonl => self.jsonl_line(line, path, file_idx, line_no),
                Format::Text => self.text_line(line, path, file_idx, line_no),
            };
            if let Err(err) = res {
                if !skip_invalid {
                    return Err(err);
                }
                tracing::warn!("skipping: {err}");
                self.skipped_lines += 1;
            }
        }
        Ok(())
    }

    /// Appends `seq` to the arena, reserving fallibly (an error rather than an abort).
    fn grow(&mut self, seq: &[u8], path: &str, line: u64) -> Result<(), CoreError> {
        self.bytes.try_reserve(seq.len()).map_err(|_| {
            data_err(
                path,
                line,
                format!(
                    "out of memory holding {} bytes of sequence",
                    self.bytes.len() + seq.len()
                ),
            )
        })?;
        self.bytes.extend_from_slice(seq);
        Ok(())
    }

    fn push_record(
        &mut self,
        name: String,
        file: u32,
        line: u64,
        seq: &[u8],
        path: &str,
    ) -> Result<(), CoreError> {
        let offset = self.bytes.len() as u64;
        self.grow(seq, path, line)?;
        self.records.push(Record {
            name,
            file,
            line,
            offset,
            len: seq.len() as u64,
        });
        Ok(())
    }

    fn fasta_line(
        &mut self,
        line: &[u8],
        path: &str,
        file: u32,
        no: u64,
        open: &mut bool,
    ) -> Result<(), CoreError> {
        if let Some(header) = line.strip_prefix(b">") {
            let name = String::from_utf8_lossy(header);
            let name = name.split_whitespace().next().unwrap_or("").to_string();
            if name.is_empty() {
                return Err(data_err(path, no, "FASTA header '>' without a name"));
            }
            self.push_record(name, file, no, &[], path)?;
            *open = true;
            return Ok(());
        }
        if line.is_empty() || line.starts_with(b";") {
            return Ok(());
        }
        if !*open {
            return Err(data_err(
                path,
                no,
                "sequence line before the first FASTA header ('>name')",
            ));
        }
        check_bases(line, path, no)?;
        self.grow(line, path, no)?;
        if let Some(last) = self.records.last_mut() {
            last.len += line.len() as u64;
        }
        Ok(())
    }

    fn jsonl_line(&mut self, line: &[u8], path: &str, file: u32, no: u64) -> Result<(), CoreError> {
        if line.is_empty() {
            return Ok(());
        }
        let row: JsonRow<'_> = serde_json::from_slice(line).map_err(|e| {
            data_err(
                path,
                no,
                format!("malformed JSONL row (expected {{\"id\", \"seq\"}}): {e}"),
            )
        })?;
        check_bases(row.seq.as_bytes(), path, no)?;
        let name = row
            .id
            .map(|s| s.into_owned())
            .unwrap_or_else(|| format!("{path}:{no}"));
        self.push_record(name, file, no, row.seq.as_bytes(), path)
    }

    fn text_line(&mut self, line: &[u8], path: &str, file: u32, no: u64) -> Result<(), CoreError> {
        if line.is_empty() {
            return Ok(());
        }
        check_bases(line, path, no)?;
        self.push_record(format!("{path}:{no}"), file, no, line, path)
    }

    /// `file:line` of a record, for error messages.
    pub fn location(&self, record: &Record) -> String {
        let file = self
            .files
            .get(record.file as usize)
            .map(String::as_str)
            .unwrap_or("?");
        format!("{file}:{}", record.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn reads_fasta_jsonl_text() {
        let dir = std::env::temp_dir().join(format!("glmx-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fa = write(&dir, "a.fa", ">chr1 desc\nACgt\nNNac\n>chr2\nTT\n");
        let js = write(&dir, "b.jsonl", "{\"id\":\"x\",\"seq\":\"acgT\"}\n\n");
        let tx = write(&dir, "c.txt", "GGGG\r\n");
        let c = Corpus::read(&[fa, js, tx], false).unwrap();
        let names: Vec<_> = c.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(&names[..3], &["chr1", "chr2", "x"]);
        assert_eq!(c.records[0].len, 8);
        assert_eq!(&c.bytes[..8], b"ACgtNNac");
        assert_eq!(c.records[3].len, 4);
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("glmx-src-err-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let js = write(
            &dir,
            "bad.jsonl",
            "{\"id\":\"x\",\"seq\":\"ACGT\"}\n{\"id\": 3\n",
        );
        let err = Corpus::read(std::slice::from_ref(&js), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.jsonl:2"), "{err}");
        let c = Corpus::read(&[js], true).unwrap();
        assert_eq!(c.skipped_lines, 1);
        let fa = write(&dir, "bad.fa", ">a\nAC1T\n");
        let err = Corpus::read(&[fa], false).unwrap_err().to_string();
        assert!(
            err.contains("bad.fa:2") && err.contains("column 3"),
            "{err}"
        );
    }

    #[test]
    fn decompression_bombs_hit_the_limits() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("glmx-src-bomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bomb.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::best(),
        );
        gz.write_all(b"ACGT\n").unwrap();
        for _ in 0..64 {
            gz.write_all(&[b'A'; 1 << 16]).unwrap(); // 4 MiB on line 2
        }
        gz.finish().unwrap();
        let p = path.to_string_lossy().into_owned();
        let small = Limits {
            max_line_bytes: 1 << 20,
            max_total_bytes: 1 << 40,
        };
        let err = Corpus::read_with(std::slice::from_ref(&p), false, &small)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bomb.txt.gz:2") && err.contains("GLMX_DATA_MAX_LINE_BYTES"),
            "{err}"
        );
        let total = Limits {
            max_line_bytes: 1 << 30,
            max_total_bytes: 1 << 20,
        };
        let err = Corpus::read_with(std::slice::from_ref(&p), false, &total)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bomb.txt.gz:2") && err.contains("GLMX_DATA_MAX_BYTES"),
            "{err}"
        );
        let c = Corpus::read_with(&[p], false, &Limits::default()).unwrap();
        assert_eq!(c.records[1].len, 4 << 20);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
