//! ImageFolder classification data: `ROOT/SPLIT/CLASS/*.{jpg,png}` decoded, augmented and
//! normalized into `[B, 3, H, W]` batches by the same order / sharding / resume machinery as the
//! DNA loader ([`crate::data::sampler`], [`crate::data::Position`]).
//!
//! - [`folder`]: scanning a split (sorted classes, class-major sorted files, clear errors).
//! - [`decode`]: JPEG (zune-jpeg) and PNG (the `image` crate) to RGB, into reused buffers.
//! - [`transform`]: the spec and the per-image crop plan (torchvision's sampling).
//! - [`resample`]: the per-image kernel (resample, flip, normalize into the batch row).
//! - [`loader`]: the threaded, prefetching, resumable batch stream (its work: `job`).
//! - [`pool`]: recycled host memory for float32 batches.

pub mod decode;
pub mod folder;
mod job;
pub mod loader;
pub mod pool;
pub mod resample;
pub mod transform;

#[cfg(test)]
mod tests;

pub use decode::{decode_file, Rgb};
pub use folder::ImageFolder;
pub use loader::{ImageBatch, ImageLoader, ImageLoaderConfig, ImageNext, OnBad, Pixels};
pub use transform::ImageSpec;
