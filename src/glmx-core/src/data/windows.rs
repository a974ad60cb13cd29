//! The window index: global window number -> byte offset in the corpus, in O(log runs).
//!
//! Windows are cut from segments (whole records, or BED regions of them) with a fixed stride,
//! full windows only. Consecutive kept windows form a run; dropping mostly-N windows splits
//! runs. Memory is one small struct per run, never one entry per window.

use std::collections::HashMap;

use crate::data::source::{data_err, Corpus};
use crate::error::CoreError;

/// How windows are cut.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    /// Window length in bases.
    pub seq_len: u64,
    /// Distance between window starts.
    pub stride: u64,
    /// Drop windows whose fraction of non-ACGT bases exceeds this (None keeps all).
    pub max_n_fraction: Option<f64>,
    /// Skip (with a warning) sequences shorter than `seq_len` instead of failing.
    pub skip_short: bool,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    /// Global index of the first window in this run.
    first: u64,
    /// Corpus byte offset of the first window.
    offset: u64,
    /// Record the run belongs to.
    record: u32,
}

/// Maps window numbers to corpus offsets.
#[derive(Debug, Default)]
pub struct WindowIndex {
    runs: Vec<Run>,
    stride: u64,
    total: u64,
    /// Sequences skipped because they were shorter than a window.
    pub skipped_short: u64,
    /// Windows dropped by `max_n_fraction`.
    pub dropped_n: u64,
}

/// A BED region: record name, 0-based half-open interval, and where it was read.
#[derive(Debug, Clone)]
pub struct Region {
    /// Record (chromosome) name.
    pub name: String,
    /// Start (0-based, inclusive).
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// 1-based line in the BED file.
    pub line: u64,
}

/// Reads a BED-like file (`name<TAB>start<TAB>end`, extra columns ignored).
pub fn read_bed(path: &str) -> Result<Vec<Region>, CoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CoreError::Data(format!("{path}: cannot read regions file: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let no = i as u64 + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("track") || t.starts_with("browser")
        {
            continue;
        }
        let mut cols = t.split_whitespace();
        let (Some(name), Some(s), Some(e)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(data_err(
                path,
                no,
                "BED line needs at least 3 columns: name start end",
            ));
        };
        let parse = |v: &str, what: &str| {
            v.parse::<u64>().map_err(|_| {
                data_err(
                    path,
                    no,
                    format!("BED {what} {v:?} is not a non-negative integer"),
                )
            })
        };
        let (start, end) = (parse(s, "start")?, parse(e, "end")?);
        if end < start {
            return Err(data_err(
                path,
                no,
                format!("BED end {end} is before start {start}"),
            ));
        }
        out.push(Region {
            name: name.to_string(),
            start,
            end,
            line: no,
        });
    }
    Ok(out)
}

#[inline]
fn is_acgt(b: u8) -> bool {
    matches!(b | 0x20, b'a' | b'c' | b'g' | b't')
}

impl WindowIndex {
    /// Builds the index over `corpus`, optionally restricted to `regions` (from `bed_path`).
    pub fn build(
        corpus: &Corpus,
        spec: &WindowSpec,
        regions: Option<(&str, &[Region])>,
    ) -> Result<Self, CoreError> {
        if spec.seq_len == 0 || spec.stride == 0 {
            return Err(CoreError::Data(
                "seq_len and stride must be positive".into(),
            ));
        }
        let mut idx = WindowIndex {
            stride: spec.stride,
            ..Default::default()
        };
        match regions {
            None => {
                for (ri, rec) in corpus.records.iter().enumerate() {
                    if rec.len < spec.seq_len {
                        if !spec.skip_short {
                            return Err(CoreError::Data(format!(
                                "{}: sequence '{}' has {} bases, shorter than seq_len={} \
                                 (pass skip_invalid=True to skip short sequences)",
                                corpus.location(rec),
                                rec.name,
                                rec.len,
                                spec.seq_len
                            )));
                        }
                        idx.skipped_short += 1;
                        continue;
                    }
                    idx.add_segment(corpus, spec, ri as u32, rec.offset, rec.len);
                }
            }
            Some((bed, regions)) => {
                let by_name: HashMap<&str, usize> = corpus
                    .records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.name.as_str(), i))
                    .collect();
                for reg in regions {
                    let Some(&ri) = by_name.get(reg.name.as_str()) else {
                        return Err(data_err(
                            bed,
                            reg.line,
                            format!("region names '{}', no such sequence", reg.name),
                        ));
                    };
                    let rec = &corpus.records[ri];
                    if reg.end > rec.len {
                        return Err(data_err(
                            bed,
                            reg.line,
                            format!(
                                "region end {} is past the end of '{}' ({} bases)",
                                reg.end, reg.name, rec.len
                            ),
                        ));
                    }
                    let len = reg.end - reg.start;
                    if len >= spec.seq_len {
                        idx.add_segment(corpus, spec, ri as u32, rec.offset + reg.start, len);
                    } else {
                        idx.skipped_short += 1;
                    }
                }
            }
        }
        if idx.skipped_short > 0 {
            tracing::warn!(
                skipped = idx.skipped_short,
                "skipped sequences/regions shorter than seq_len"
            );
        }
        Ok(idx)
    }

    fn push(&mut self, record: u32, offset: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.runs.push(Run {
            first: self.total,
            offset,
            record,
        });
        self.total += count;
    }

    fn add_segment(
        &mut self,
        corpus: &Corpus,
        spec: &WindowSpec,
        record: u32,
        start: u64,
        len: u64,
    ) {
        let count = (len - spec.seq_len) / spec.stride + 1;
        let Some(max_frac) = spec.max_n_fraction else {
            self.push(record, start, count);
            return;
        };
        let limit = (max_frac * spec.seq_len as f64).floor() as u64;
        let bytes = &corpus.bytes;
        let (l, s) = (spec.seq_len as usize, spec.stride as usize);
        // Sliding count of non-ACGT bases in the current window.
        let mut n_count = bytes[start as usize..start as usize + l]
            .iter()
            .filter(|&&b| !is_acgt(b))
            .count() as u64;
        let mut run_start: Option<u64> = None;
        for k in 0..count {
            let ws = start as usize + k as usize * s;
            if k > 0 {
                let prev = ws - s;
                if s >= l {
                    n_count = bytes[ws..ws + l].iter().filter(|&&b| !is_acgt(b)).count() as u64;
                } else {
                    let removed = bytes[prev..ws].iter().filter(|&&b| !is_acgt(b)).count() as u64;
                    let added = bytes[prev + l..ws + l]
                        .iter()
                        .filter(|&&b| !is_acgt(b))
                        .count() as u64;
                    n_count = n_count + added - removed;
                }
            }
            let keep = n_count <= limit;
            match (keep, run_start) {
                (true, None) => run_start = Some(k),
                (false, Some(r)) => {
                    self.push(record, start + r * spec.stride, k - r);
                    run_start = None;
                }
                _ => {}
            }
            if !keep {
                self.dropped_n += 1;
            }
        }
        if let Some(r) = run_start {
            self.push(record, start + r * spec.stride, count - r);
        }
    }

    /// Number of windows.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when no window fits.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Corpus byte offset and record of window `i` (`i < len()`).
    #[inline]
    pub fn locate(&self, i: u64) -> (u64, u32) {
        let r = self
            .runs
            .partition_point(|run| run.first <= i)
            .saturating_sub(1);
        let run = self.runs[r];
        (run.offset + (i - run.first) * self.stride, run.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(seqs: &[&str]) -> Corpus {
        let mut c = Corpus::default();
        for (i, s) in seqs.iter().enumerate() {
            let offset = c.bytes.len() as u64;
            c.bytes.extend_from_slice(s.as_bytes());
            c.records.push(crate::data::source::Record {
                name: format!("r{i}"),
                file: 0,
                line: 1,
                offset,
                len: s.len() as u64,
            });
        }
        c.files.push("mem".into());
        c
    }

    #[test]
    fn windows_stride_and_n_filter() {
        let c = corpus(&["ACGTACGTAC", "NNNNACGTAC"]);
        let spec = WindowSpec {
            seq_len: 4,
            stride: 2,
            max_n_fraction: None,
            skip_short: false,
        };
        let idx = WindowIndex::build(&c, &spec, None).unwrap();
        assert_eq!(idx.len(), 8);
        assert_eq!(idx.locate(4), (10, 1));
        let spec = WindowSpec {
            max_n_fraction: Some(0.5),
            ..spec
        };
        let idx = WindowIndex::build(&c, &spec, None).unwrap();
        // second record windows: NNNN(drop) NNAC(keep, 2/4) ACGT AC.. -> 3 kept
        assert_eq!(idx.len(), 7);
        assert_eq!(idx.locate(4), (12, 1));
        assert_eq!(idx.dropped_n, 1);
    }

    #[test]
    fn short_sequence_is_an_error_unless_skipped() {
        let c = corpus(&["ACGTACGT", "AC"]);
        let spec = WindowSpec {
            seq_len: 4,
            stride: 4,
            max_n_fraction: None,
            skip_short: false,
        };
        let err = WindowIndex::build(&c, &spec, None).unwrap_err().to_string();
        assert!(
            err.contains("mem:1") && err.contains("shorter than seq_len=4"),
            "{err}"
        );
        let idx = WindowIndex::build(
            &c,
            &WindowSpec {
                skip_short: true,
                ..spec
            },
            None,
        )
        .unwrap();
        assert_eq!((idx.len(), idx.skipped_short), (2, 1));
    }

    #[test]
    fn regions_restrict_windows() {
        let c = corpus(&["ACGTACGTACGT"]);
        let spec = WindowSpec {
            seq_len: 4,
            stride: 4,
            max_n_fraction: None,
            skip_short: false,
        };
        let regs = vec![Region {
            name: "r0".into(),
            start: 2,
            end: 11,
            line: 1,
        }];
        let idx = WindowIndex::build(&c, &spec, Some(("x.bed", &regs))).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.locate(1), (6, 0));
    }
}
