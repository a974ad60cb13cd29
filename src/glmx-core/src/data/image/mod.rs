//! ImageFolder classification data: `ROOT/SPLIT/CLASS/*.{jpg,png}` decoded, augmented and
//! normalized into `[B, 3, H, W]` batches by the same order / sharding / resume machinery as the
//! DNA loader ([`crate::data::sampler`], [`crate::data::Position`]).
//!
//! - [`folder`]: scanning a split (sorted classes, class-major sorted files, clear errors).
//! - [`transform`]: decoding (the `image` crate: zune-jpeg, png) and the per-image kernel.
//! - [`loader`]: the threaded, prefetching, resumable batch stream.

pub mod folder;
pub mod loader;
pub mod transform;

pub use folder::ImageFolder;
pub use loader::{ImageBatch, ImageLoader, ImageLoaderConfig, ImageNext, OnBad};
pub use transform::{decode_file, ImageSpec};
