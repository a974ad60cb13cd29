//! Checkpoint coordinator: crash-safe, asynchronous, pickle-free checkpoints.
//!
//! Layout of `<run>/checkpoints/checkpoint-<step>/`: `model.safetensors` (or HF-style shards
//! plus `model.safetensors.index.json`), one safetensors file per component (`optimizer`,
//! `scheduler`, `trainer`, `loader`, `rng_rank<r>`, ...) whose nested structure is JSON in the
//! file's metadata, and `checkpoint_manifest.json` with sizes and checksums. `latest` names the
//! newest committed directory. Nothing is pickled, so loading never runs code.

pub mod coordinator;
pub mod format;
pub mod fsutil;
pub mod load;
pub mod manifest;
pub mod retention;
pub mod snapshot;
mod writer;

pub use coordinator::{ComponentInput, Coordinator, Options, SaveRequest};
pub use load::{Loaded, LoadedComponent};
pub use manifest::{Manifest, Sharing};
pub use retention::Mode;

#[cfg(test)]
mod tests;
