"""scikit-learn's 1,797 real handwritten digits written as an ImageFolder of PNGs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from glmx._optional import require
from glmx.errors import DataError

SPLITS = ("train", "val", "test")


def write_digits(
    out: str | os.PathLike[str],
    size: int = 32,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> dict[str, int]:
    """Writes ``sklearn.datasets.load_digits`` as ``out/{train,val,test}/{0..9}/NNNN.png``.

    The 8x8 images (values 0-16) are scaled to 0-255 and upscaled to ``size`` x ``size``
    grayscale PNGs (PIL bilinear). The split is stratified per digit and fixed by ``seed``;
    ``NNNN`` is the row of the image in ``load_digits``.

    Returns:
        images per split.

    Raises:
        DataError: on bad fractions or size, or when ``out`` already holds another data set.
    """
    datasets = require("sklearn.datasets", "vision", "glmx data digits")
    pil = require("PIL.Image", "vision", "glmx data digits")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError(
            f"val_fraction and test_fraction must be in [0, 1) with a sum < 1, got "
            f"{val_fraction} and {test_fraction}"
        )
    if not 8 <= size <= 512:
        raise DataError(f"size must be between 8 and 512 pixels, got {size}")
    root = Path(out)
    if root.exists() and any(root.iterdir()) and not (root / "digits.json").is_file():
        raise DataError(f"{root} exists and is not a digits folder; choose an empty directory")
    digits = datasets.load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    target = digits.target
    rng = np.random.RandomState(seed)
    which = np.empty(len(target), dtype=object)
    for label in range(10):
        rows = np.flatnonzero(target == label)
        rows = rows[rng.permutation(len(rows))]
        n_val, n_test = round(len(rows) * val_fraction), round(len(rows) * test_fraction)
        which[rows[:n_val]] = "val"
        which[rows[n_val : n_val + n_test]] = "test"
        which[rows[n_val + n_test :]] = "train"
    counts = dict.fromkeys(SPLITS, 0)
    for i, (img, label, split) in enumerate(zip(images, target, which, strict=True)):
        d = root / split / str(label)
        d.mkdir(parents=True, exist_ok=True)
        im = pil.fromarray(img, mode="L").resize((size, size), pil.BILINEAR)
        im.save(d / f"{i:04d}.png")
        counts[split] += 1
    summary = {"source": "sklearn.datasets.load_digits", "size": size, "seed": seed, **counts}
    (root / "digits.json").write_text(json.dumps(summary, indent=2) + "\n")
    return counts
