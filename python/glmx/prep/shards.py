"""Train / validation / test assignment and the GPN shard format.

Output layout (as GPN's): ``DIR/{train,validation,test}/shard_XXXX.jsonl.zst``, one JSON object
per line ``{"id": "chrom:start-end", "seq": "..."}``, rows shuffled with a fixed seed.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glmx.errors import DataError
from glmx.prep.intervals import Interval

SPLITS = ("train", "validation", "test")
log = logging.getLogger("glmx.prep")


@dataclass
class SplitSpec:
    """How windows are assigned to splits.

    By chromosome (GPN's rule): windows on ``val_chroms`` go to validation, on ``test_chroms`` to
    test, the rest to train. By block, for genomes with too few chromosomes (e.g. the single
    chr4 of the demo): every chromosome is cut into ``block_size`` blocks and a seeded choice of
    ``round(val_fraction * n_blocks)`` blocks (at least one when the fraction is > 0) goes to
    validation, likewise for test. A window belongs to a split only when every block it
    touches is of that split: one that straddles the boundary between a training and a held-out
    block is dropped, so no training window holds a held-out base (and no held-out window a
    training base). Both rules may be combined (chromosome lists win).
    """

    val_chroms: Sequence[str] = ()
    test_chroms: Sequence[str] = ()
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    block_size: int = 100_000
    seed: int = 42
    _blocks: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)

    def validate(self, chrom_sizes: dict[str, int]) -> None:
        """Checks the spec against the genome and fixes the block assignment.

        Raises:
            DataError: naming an unknown chromosome or an impossible fraction.
        """
        for name in (*self.val_chroms, *self.test_chroms):
            if name not in chrom_sizes:
                shown = ", ".join(sorted(chrom_sizes)[:10])
                raise DataError(f"split chromosome {name!r} is not in the genome (has: {shown})")
        overlap = set(self.val_chroms) & set(self.test_chroms)
        if overlap:
            raise DataError(f"chromosomes {sorted(overlap)} are both validation and test")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1) or (
            self.val_fraction + self.test_fraction >= 1
        ):
            raise DataError(
                f"val_fraction ({self.val_fraction}) and test_fraction ({self.test_fraction}) must "
                "be in [0, 1) and sum to less than 1"
            )
        fixed = set(self.val_chroms) | set(self.test_chroms)
        blocks = [
            (chrom, b)
            for chrom in sorted(chrom_sizes)
            if chrom not in fixed
            for b in range(-(-chrom_sizes[chrom] // self.block_size))
        ]
        rng = random.Random(self.seed)
        rng.shuffle(blocks)

        def count(frac: float) -> int:
            return 0 if frac <= 0 else max(1, round(frac * len(blocks)))

        n_val, n_test = count(self.val_fraction), count(self.test_fraction)
        if blocks and n_val + n_test >= len(blocks):
            raise DataError(
                f"only {len(blocks)} blocks of {self.block_size} bp: not enough for the held-out "
                "fractions and a training set; lower block_size or the fractions"
            )
        self._blocks = {b: "validation" for b in blocks[:n_val]}
        self._blocks.update({b: "test" for b in blocks[n_val : n_val + n_test]})

    def split_of(self, chrom: str, start: int) -> str:
        """The split of the base at ``start`` on ``chrom``."""
        if chrom in self.val_chroms:
            return "validation"
        if chrom in self.test_chroms:
            return "test"
        return self._blocks.get((chrom, start // self.block_size), "train")

    def split_of_span(self, chrom: str, start: int, end: int) -> str | None:
        """The split of the window ``[start, end)``, or None when it spans blocks of different
        splits."""
        first = self.split_of(chrom, start)
        if chrom in self.val_chroms or chrom in self.test_chroms:
            return first
        last_block = max(start, end - 1) // self.block_size
        for block in range(start // self.block_size + 1, last_block + 1):
            if self._blocks.get((chrom, block), "train") != first:
                return None
        return first


def assign(windows: Iterable[Interval], spec: SplitSpec) -> dict[str, list[Interval]]:
    """Groups windows by split; windows across a boundary between splits are left out (the
    count is logged)."""
    out: dict[str, list[Interval]] = {s: [] for s in SPLITS}
    dropped = 0
    for chrom, start, end in windows:
        split = spec.split_of_span(chrom, start, end)
        if split is None:
            dropped += 1
        else:
            out[split].append((chrom, start, end))
    if dropped:
        log.info("%d windows across a split boundary left out", dropped)
    return out


def write_shards(
    rows: list[dict[str, str]], out_dir: Path, shard_size: int, seed: int, level: int = 3
) -> list[Path]:
    """Shuffles ``rows`` and writes ``shard_XXXX.jsonl.zst`` files of ``shard_size`` rows.

    Raises:
        DataError: when ``zstandard`` is missing or ``shard_size`` < 1.
    """
    try:
        import zstandard
    except ImportError:
        raise DataError("writing .jsonl.zst shards needs the 'zstandard' package") from None
    if shard_size < 1:
        raise DataError(f"shard_size must be >= 1, got {shard_size}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("shard_*.jsonl.zst"):
        old.unlink()  # a re-run with fewer rows must not leave stale shards behind
    paths = []
    cctx = zstandard.ZstdCompressor(level=level)
    for n, lo in enumerate(range(0, len(order), shard_size)):
        text = "".join(
            json.dumps(rows[i], separators=(",", ":")) + "\n" for i in order[lo : lo + shard_size]
        )
        path = out_dir / f"shard_{n:04d}.jsonl.zst"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(cctx.compress(text.encode("ascii")))
        os.replace(tmp, path)
        paths.append(path)
    return paths
