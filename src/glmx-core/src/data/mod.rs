//! The genomic MLM data pipeline: sources -> windows -> (order, shard) -> tokenize/RC/mask.
//!
//! - [`source`]: FASTA / JSONL / text files (plain, `.gz`, `.zst`) into one arena.
//! - [`windows`]: fixed-length windows with a stride, optional BED regions and N filter.
//! - [`sampler`]: O(1) seeded permutation and exact DDP sharding.
//! - [`transform`]: the per-sample kernel (GPN tokenizer, RC, 80/10/10 masking, loss weights).
//! - [`loader`]: the threaded, prefetching, resumable batch stream.

pub mod image;
pub mod loader;
pub mod sampler;
pub mod source;
pub mod transform;
pub mod windows;

use crate::error::CoreError;
pub use loader::{Batch, Loader, LoaderConfig, Next, Position};
use source::Corpus;
pub use transform::MaskSpec;
use windows::{WindowIndex, WindowSpec};

/// How to read and cut a dataset.
#[derive(Debug, Clone)]
pub struct DatasetConfig {
    /// Data files (already glob-expanded), read in this order.
    pub paths: Vec<String>,
    /// Optional BED-like file restricting windows to regions.
    pub regions: Option<String>,
    /// Windowing.
    pub windows: WindowSpec,
    /// Skip malformed lines and short sequences (counted, with a warning) instead of failing.
    pub skip_invalid: bool,
}

/// An immutable, shareable dataset: the sequences, the window index and the sample kernel.
#[derive(Debug)]
pub struct Dataset {
    corpus: Corpus,
    index: WindowIndex,
    seq_len: u64,
}

impl Dataset {
    /// Reads the files and indexes the windows.
    pub fn open(cfg: &DatasetConfig) -> Result<Self, CoreError> {
        let corpus = Corpus::read(&cfg.paths, cfg.skip_invalid)?;
        let regions = match &cfg.regions {
            Some(bed) => Some((bed.as_str(), windows::read_bed(bed)?)),
            None => None,
        };
        let index = WindowIndex::build(
            &corpus,
            &cfg.windows,
            regions.as_ref().map(|(p, r)| (*p, r.as_slice())),
        )?;
        if index.is_empty() {
            return Err(CoreError::Data(format!(
                "no window of seq_len={} fits in {} sequence(s) from {} file(s)",
                cfg.windows.seq_len,
                corpus.records.len(),
                corpus.files.len()
            )));
        }
        let bases = corpus.bytes.len();
        tracing::info!(
            windows = index.len(),
            bases,
            files = corpus.files.len(),
            "data: indexed windows"
        );
        Ok(Dataset {
            seq_len: cfg.windows.seq_len,
            corpus,
            index,
        })
    }

    /// Number of windows (samples).
    pub fn len(&self) -> u64 {
        self.index.len()
    }

    /// Always false: opening fails on an empty dataset.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Window length.
    pub fn seq_len(&self) -> u64 {
        self.seq_len
    }

    /// Raw bytes of window `i` (`i < len()`).
    #[inline]
    pub fn window(&self, i: u64) -> &[u8] {
        let (off, _) = self.index.locate(i);
        &self.corpus.bytes[off as usize..(off + self.seq_len) as usize]
    }

    /// Record name and 0-based start of window `i` within it.
    pub fn origin(&self, i: u64) -> Result<(String, u64), CoreError> {
        if i >= self.len() {
            return Err(CoreError::Data(format!(
                "window {i} out of range (dataset has {})",
                self.len()
            )));
        }
        let (off, rec) = self.index.locate(i);
        let r = &self.corpus.records[rec as usize];
        Ok((r.name.clone(), off - r.offset))
    }

    /// Lines skipped as malformed, sequences skipped as short, windows dropped as mostly N.
    pub fn skipped(&self) -> (u64, u64, u64) {
        (
            self.corpus.skipped_lines,
            self.index.skipped_short,
            self.index.dropped_n,
        )
    }
}

/// Validates probabilities of a [`MaskSpec`].
pub fn check_spec(s: &MaskSpec) -> Result<(), CoreError> {
    let unit = |v: f64| (0.0..=1.0).contains(&v);
    if !unit(s.mlm_probability)
        || !unit(s.rc_prob)
        || !unit(s.mask_fraction)
        || !unit(s.random_fraction)
    {
        return Err(CoreError::Data(format!(
            "probabilities must lie in [0, 1]: mlm_probability={} rc_prob={} mask_fraction={} random_fraction={}",
            s.mlm_probability, s.rc_prob, s.mask_fraction, s.random_fraction
        )));
    }
    if s.mask_fraction + s.random_fraction > 1.0 + 1e-9 {
        return Err(CoreError::Data(
            "mask_fraction + random_fraction must not exceed 1".into(),
        ));
    }
    Ok(())
}
