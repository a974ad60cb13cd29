"""The demo's training data: D. melanogaster chr4 split into held-out 50-kb blocks, training
sequence that never reaches into them, and extra training windows around splice sites.

``glmx.prep.windows`` writes fixed windows (those across a split boundary left out); the demo
builds its rows itself because its training rows are whole runs that the loader windows with a
stride. Every split is cut from its own blocks only: training rows are the N-free runs of the training blocks (the data loader cuts
overlapping windows from them with a stride), held-out rows are non-overlapping ``window``-bp
tiles of the held-out blocks. No held-out base is in any training row.

Splice sites are ~1,500 positions in 1.35 Mbp: a few minutes of uniform sampling shows each
of them a handful of times, too few to learn the donor (``GT``) / acceptor (``AG``)
consensus. GPN-style functional-region sampling fixes that: ``splice_copies`` extra rows per
training-block splice site, each a ``window``-bp window with the site at a seeded random
offset (the loader reverse-complements half of them). Held-out splits stay uniform tiles, so
the held-out loss is measured on the genome as it is, not on the oversampled sites.

Oversampling alone does not teach the consensus in minutes (docs/science.md, section 2):
:class:`SpliceMasking` adds masked-LM examples whose masked base is a training-block splice
site, which the demo weighs into its loss.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from glmx.eval.annotation_sites import read_annotation
from glmx.prep.genome import PathLike, defined_intervals, read_fasta
from glmx.prep.intervals import Interval, intersect, merge, tile
from glmx.prep.pipeline import SUMMARY, PrepResult, _composition
from glmx.prep.shards import SPLITS, SplitSpec, write_shards

__all__ = ["SpliceMasking", "demo_data", "split_blocks", "splice_sites"]


def split_blocks(sizes: dict[str, int], spec: SplitSpec) -> dict[str, list[Interval]]:
    """The blocks of each split as merged intervals (``spec`` already validated)."""
    out: dict[str, list[Interval]] = {s: [] for s in SPLITS}
    for chrom, size in sizes.items():
        for b in range(-(-size // spec.block_size)):
            lo, hi = b * spec.block_size, min((b + 1) * spec.block_size, size)
            out[spec.split_of(chrom, lo)].append((chrom, lo, hi))
    return {s: merge(v) for s, v in out.items()}


def splice_sites(gtf: PathLike) -> list[tuple[str, int]]:
    """Distinct ``(chrom, position)`` of every intron's first and last base (0-based)."""
    sites: set[tuple[str, int]] = set()
    for t in read_annotation(gtf).transcripts:
        for s, e in t.introns():
            if e - s >= 8:
                sites.update(((t.chrom, s), (t.chrom, e - 1)))
    return sorted(sites)


def _inside(regions: list[Interval], chrom: str, lo: int, hi: int) -> bool:
    return any(c == chrom and s <= lo and hi <= e for c, s, e in regions)


def demo_data(
    fasta: PathLike,
    gtf: PathLike | None,
    out: PathLike,
    *,
    window: int = 128,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    block_size: int = 50_000,
    splice_copies: int = 8,
    shard_size: int = 100_000,
    seed: int = 42,
) -> PrepResult:
    """Writes ``out/{train,validation,test}/shard_XXXX.jsonl.zst`` and ``prep_summary.json``
    (with ``params.heldout``: the exact held-out intervals, for
    :func:`glmx.eval.annotation_benchmark`'s ``regions``).

    Training rows are whole N-free runs of the training blocks (cut with a stride by the
    loader) plus ``splice_copies`` ``window``-bp rows per training splice site (none without
    ``gtf``); held-out rows are non-overlapping ``window``-bp tiles. ``counts`` are rows.

    Raises:
        DataError: for unreadable inputs or an impossible split.
    """
    genome = read_fasta(fasta)
    sizes = {c: len(s) for c, s in genome.items()}
    spec = SplitSpec((), (), val_fraction, test_fraction, block_size, seed)
    spec.validate(sizes)
    blocks = split_blocks(sizes, spec)
    defined = [(c, s, e) for c, seq in genome.items() for s, e in defined_intervals(seq)]
    regions = {s: intersect(blocks[s], defined) for s in SPLITS}
    rows: dict[str, list[dict[str, str]]] = {s: [] for s in SPLITS}
    for c, s, e in regions["train"]:
        if e - s >= window:
            rows["train"].append({"id": f"{c}:{s}-{e}", "seq": genome[c][s:e]})
    for split in ("validation", "test"):
        for c, s, e in tile(regions[split], window):
            rows[split].append({"id": f"{c}:{s}-{e}", "seq": genome[c][s:e]})
    composition = {s: _composition([r["seq"] for r in rows[s]]) for s in SPLITS}
    rng = random.Random(seed)
    n_sites = 0
    for chrom, pos in splice_sites(gtf) if gtf is not None and splice_copies > 0 else []:
        if not _inside(regions["train"], chrom, pos - window, pos + window):
            continue  # held-out or near an edge: a shifted window could leave the region
        n_sites += 1
        for _ in range(splice_copies):
            lo = pos - rng.randrange(window // 8, window - window // 8)
            rows["train"].append(
                {"id": f"{chrom}:{lo}-{lo + window}", "seq": genome[chrom][lo : lo + window]}
            )
    out_dir = Path(out)
    for split in SPLITS:
        write_shards(rows[split], out_dir / split, shard_size, seed)
    params: dict[str, Any] = {
        "recipe": "glmx.examples.dna_demo",
        "fasta": str(fasta),
        "gtf": None if gtf is None else str(gtf),
        "window": window,
        "splice_copies": splice_copies,
        "splice_sites": n_sites,
        "split": {k: v for k, v in asdict(spec).items() if not k.startswith("_")},
        "heldout": {s: [list(r) for r in regions[s]] for s in ("validation", "test")},
        "shard_size": shard_size,
        "seed": seed,
    }
    counts = {s: len(rows[s]) for s in SPLITS}
    result = PrepResult(out_dir, counts, composition, params)
    summary = {k: v for k, v in asdict(result).items() if k != "out_dir"}
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return result


class SpliceMasking:
    """Extra masked-LM examples at training-block splice sites: each row is a ``window``-bp
    window with one base of a canonical-position intron dinucleotide (the intron's first two or
    last two bases) ``[MASK]``ed and labelled, plus 15% random ``[MASK]`` elsewhere (unlabelled),
    reverse-complemented with probability 0.5. The demo adds their cross-entropy, times a
    weight, to GPN's loss: the annotation chooses *where* the loss looks, the target is still
    the reference base, and only training-block sites are used (``heldout`` excludes the rest).
    """

    _TOKENS = {"a": 3, "c": 4, "g": 5, "t": 6}
    _COMPLEMENT = (0, 1, 2, 6, 5, 4, 3)

    def __init__(
        self,
        genome: dict[str, str],
        gtf: PathLike,
        heldout: list[Interval],
        window: int = 128,
        seed: int = 0,
    ) -> None:
        import torch

        rng = random.Random(seed)
        sites: set[tuple[str, int, int]] = set()
        for t in read_annotation(gtf).transcripts:
            for s, e in t.introns():
                if e - s >= 8:
                    sites.update(((t.chrom, s, s), (t.chrom, e - 2, e - 1)))
        rows, pos = [], []
        for chrom, a, site in sorted(sites):
            seq = genome.get(chrom)
            if seq is None or any(c == chrom and s - window <= site < e + window
                                  for c, s, e in heldout):  # fmt: skip
                continue
            off = rng.randrange(window // 8, window - window // 8)
            lo = site - off
            if lo < 0 or lo + window > len(seq):
                continue
            rows.append([self._TOKENS.get(ch, 2) for ch in seq[lo : lo + window].lower()])
            pos.append((a - lo, a - lo + 1))
        self.ids = torch.tensor(rows, dtype=torch.int64).reshape(-1, window)
        self.pos = torch.tensor(pos, dtype=torch.int64).reshape(-1, 2)
        self._complement = torch.tensor(self._COMPLEMENT)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def batch(self, n: int, generator: Any = None) -> tuple[Any, Any]:
        """``(input_ids, labels)`` of ``n`` random rows (labels -100 except the masked site)."""
        import torch

        g = generator
        idx = torch.randint(0, len(self), (n,), generator=g)
        ids = self.ids[idx].clone()
        rows = torch.arange(n)
        site = self.pos[idx, torch.randint(0, 2, (n,), generator=g)]
        labels = torch.full_like(ids, -100)
        labels[rows, site] = ids[rows, site]
        ids[torch.rand(ids.shape, generator=g) < 0.15] = 1
        ids[rows, site] = 1
        rc = torch.rand(n, generator=g) < 0.5
        ids[rc] = self._complement[ids[rc]].flip(1)
        flipped = labels[rc].flip(1)
        keep = flipped >= 0
        flipped[keep] = self._complement[flipped[keep]]
        labels[rc] = flipped
        return ids, labels
