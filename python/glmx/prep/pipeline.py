"""The two preparation recipes: GPN promoter windows and whole-genome tiling."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from glmx.errors import DataError
from glmx.prep.annotation import promoter_regions, read_mrna_transcripts
from glmx.prep.genome import PathLike, defined_intervals, read_fasta
from glmx.prep.intervals import Interval, clip, intersect, merge, tile
from glmx.prep.shards import SPLITS, SplitSpec, assign, write_shards

log = logging.getLogger("glmx.prep")
SUMMARY = "prep_summary.json"


@dataclass
class PrepResult:
    """What a preparation wrote: the directory, windows per split, base counts per split
    (``{"A": n, ..., "a": n, ..., "other": n}``: uppercase and soft-masked lowercase kept
    apart) and the parameters used. Also written to ``DIR/prep_summary.json``."""

    out_dir: Path
    counts: dict[str, int]
    composition: dict[str, dict[str, int]]
    params: dict[str, Any]

    def files(self, split: str) -> list[Path]:
        """The shard files of ``split`` ("train", "validation" or "test")."""
        return sorted((self.out_dir / split).glob("shard_*.jsonl.zst"))

    def pattern(self, split: str) -> str:
        """A glob over the shards of ``split``, for :class:`glmx.data.DnaMlmLoader`."""
        return str(self.out_dir / split / "shard_*.jsonl.zst")


def _composition(seqs: list[str]) -> dict[str, int]:
    out = {b: 0 for b in "ACGTacgt"}
    total = 0
    for s in seqs:
        total += len(s)
        for b in "ACGTacgt":
            out[b] += s.count(b)
    out["other"] = total - sum(out.values())
    return out


def _defined(genome: dict[str, str]) -> list[Interval]:
    return [(c, s, e) for c, seq in genome.items() for s, e in defined_intervals(seq)]


def _write(
    genome: dict[str, str],
    windows: list[Interval],
    out: PathLike,
    split: SplitSpec,
    shard_size: int,
    seed: int,
    params: dict[str, Any],
) -> PrepResult:
    out_dir = Path(out)
    by_split = assign(windows, split)
    counts, comp = {}, {}
    for name in SPLITS:
        rows = [{"id": f"{c}:{s}-{e}", "seq": genome[c][s:e]} for c, s, e in by_split[name]]
        counts[name] = len(rows)
        comp[name] = _composition([r["seq"] for r in rows])
        write_shards(rows, out_dir / name, shard_size, seed)
        if not rows:
            log.warning("split %r is empty: no shard written", name)
    result = PrepResult(out_dir, counts, comp, params)
    summary = {k: v for k, v in asdict(result).items() if k != "out_dir"}
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %s windows to %s", counts, out_dir)
    return result


def _split_spec(
    val_chroms: list[str] | None,
    test_chroms: list[str] | None,
    val_fraction: float,
    test_fraction: float,
    block_size: int,
    seed: int,
) -> SplitSpec:
    return SplitSpec(
        tuple(val_chroms or ()),
        tuple(test_chroms or ()),
        val_fraction,
        test_fraction,
        block_size,
        seed,
    )


def promoters(
    fasta: PathLike,
    gtf: PathLike,
    out: PathLike,
    *,
    window: int = 512,
    upstream: int = 256,
    downstream: int = 256,
    val_chroms: list[str] | None = None,
    test_chroms: list[str] | None = None,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    block_size: int = 100_000,
    shard_size: int = 100_000,
    seed: int = 42,
) -> PrepResult:
    """GPN-Animal-Promoter windows: ``[TSS - upstream, TSS + downstream)`` of every
    protein-coding mRNA transcript (strand-aware), merged, N runs removed, cut into
    non-overlapping full ``window``-bp windows, case (soft-masking) kept, split by chromosome
    (and/or by block, see :class:`glmx.prep.SplitSpec`), shuffled into shards.

    Raises:
        DataError: for unreadable inputs, a GTF whose chromosomes are not in the FASTA, or an
            impossible split.
    """
    t0 = time.monotonic()
    genome = read_fasta(fasta)
    sizes = {c: len(s) for c, s in genome.items()}
    transcripts = read_mrna_transcripts(gtf)
    on_genome = [t for t in transcripts if t.chrom in sizes]
    if not on_genome:
        names = sorted({t.chrom for t in transcripts})[:5]
        raise DataError(
            f"none of the annotation's chromosomes {names} is in {fasta} (has {sorted(sizes)[:5]}); "
            "do the FASTA and GTF come from the same assembly?"
        )
    regions = merge(clip(promoter_regions(on_genome, upstream, downstream), sizes))
    regions = intersect(regions, _defined(genome))
    windows = tile(regions, window)
    spec = _split_spec(val_chroms, test_chroms, val_fraction, test_fraction, block_size, seed)
    spec.validate(sizes)
    params = {
        "recipe": "promoters",
        "fasta": str(fasta),
        "gtf": str(gtf),
        "window": window,
        "upstream": upstream,
        "downstream": downstream,
        "transcripts": len(on_genome),
        "regions": len(regions),
        "split": {k: v for k, v in asdict(spec).items() if not k.startswith("_")},
        "shard_size": shard_size,
        "seed": seed,
    }
    result = _write(genome, windows, out, spec, shard_size, seed, params)
    log.info(
        "promoters: %d transcripts -> %d windows in %.1fs",
        len(on_genome),
        len(windows),
        time.monotonic() - t0,
    )
    return result


def windows(
    fasta: PathLike,
    out: PathLike,
    *,
    window: int = 512,
    stride: int | None = None,
    val_chroms: list[str] | None = None,
    test_chroms: list[str] | None = None,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    block_size: int = 100_000,
    shard_size: int = 100_000,
    seed: int = 42,
) -> PrepResult:
    """Whole-genome tiling: full ``window``-bp windows every ``stride`` bases (default:
    non-overlapping) over each N-free run of every sequence, case kept, split by chromosome
    and/or block, shuffled into shards.

    Raises:
        DataError: for an unreadable FASTA or an impossible split.
    """
    genome = read_fasta(fasta)
    sizes = {c: len(s) for c, s in genome.items()}
    tiles = tile(_defined(genome), window, stride)
    spec = _split_spec(val_chroms, test_chroms, val_fraction, test_fraction, block_size, seed)
    spec.validate(sizes)
    params = {
        "recipe": "windows",
        "fasta": str(fasta),
        "window": window,
        "stride": stride or window,
        "split": {k: v for k, v in asdict(spec).items() if not k.startswith("_")},
        "shard_size": shard_size,
        "seed": seed,
    }
    return _write(genome, tiles, out, spec, shard_size, seed, params)
