"""Genomic masked-LM data: :class:`DnaMlmLoader` streams tokenized, masked, sharded batches.

The pipeline (file reading, windowing, permutation, sharding, tokenize / reverse-complement /
mask) runs in Rust threads; Python receives ready tensors. See ``docs/data.md``.
Image classification: :class:`ImageFolderLoader` (``docs/images.md``).
"""

from glmx.data.image import ImageFolderDataModule, ImageFolderLoader, decode_image
from glmx.data.loader import DnaMlmLoader, expand_sources

__all__ = [
    "DnaMlmLoader",
    "expand_sources",
    "ImageFolderLoader",
    "ImageFolderDataModule",
    "decode_image",
]
