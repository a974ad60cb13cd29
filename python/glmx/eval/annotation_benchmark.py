"""A zero-shot variant-effect proxy on real annotation: AUROC / AUPRC of each functional SNV
class (splice sites, start/stop codons, coding changes) against matched background SNVs.

It is a proxy, not TraitGym: constraint at these sites is known to be high, so a model that
learned the genome's grammar ranks them above background; an untrained or broken one scores
~0.5. See docs/science.md for the construction and the numbers measured.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glmx.errors import DataError, GlmxError
from glmx.eval.annotation_sites import CLASSES, build_sites, read_annotation
from glmx.eval.metrics import auprc
from glmx.prep.genome import PathLike, open_text, read_fasta

SCORES = ("minus_llr", "abs_llr", "embed_dist")
Region = tuple[str, int, int]
# what matplotlib's savefig writes without extra backends
PLOT_FORMATS = ("png", "svg", "svgz", "pdf", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")
SPLITS = ("train", "validation", "test")


def check_options(
    *,
    window: int = 512,
    batch_size: int = 32,
    n_boot: int = 200,
    background_distance: int = 100,
    background_ratio: float = 1.0,
    max_per_class: int | None = 500,
    margin: int | None = None,
    splits: tuple[str, ...] = ("validation", "test"),
    device: str | None = None,
    plot: PathLike | None = None,
    option_names: bool = False,
) -> None:
    """Validates the benchmark's settings before anything is read or scored.

    Args:
        option_names: name the CLI options (``--window``) instead of the arguments.

    Raises:
        DataError: naming the first bad setting and the values it accepts.
    """

    def name(arg: str) -> str:
        return "--" + arg.replace("_", "-") if option_names else arg

    def at_least(arg: str, value: Any, low: int) -> None:
        if value is not None and value < low:
            raise DataError(f"{name(arg)} {value}: must be an integer >= {low}")

    at_least("window", window, 2)
    at_least("batch_size", batch_size, 1)
    at_least("n_boot", n_boot, 0)
    at_least("background_distance", background_distance, 0)
    at_least("max_per_class", max_per_class, 1)
    at_least("margin", margin, 0)
    if not background_ratio > 0:
        raise DataError(f"{name('background_ratio')} {background_ratio}: must be > 0")
    bad = [sp for sp in splits if sp not in SPLITS]
    if bad or not splits:
        raise DataError(
            f"{name('splits')} {','.join(splits)!r}: splits are {', '.join(SPLITS)} "
            "(comma-separated)"
        )
    if plot is not None:
        ext = Path(plot).suffix.lower().lstrip(".")
        if ext not in PLOT_FORMATS:
            raise DataError(
                f"{name('plot')} {plot}: the file extension must be one of "
                f"{', '.join('.' + e for e in PLOT_FORMATS)}"
            )
    if device is not None:
        _check_device(device, name("device"))


def _check_device(device: str, opt: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DataError(f"{opt} {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(f"{opt} {device}: CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DataError(f"{opt} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type not in ("cpu", "mps"):
        raise DataError(f"{opt} {device!r}: use cpu, cuda or cuda:N")


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n1 n0), ties counted half).

    Raises:
        DataError: when a class is empty, lengths differ or a score is NaN.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise DataError(f"labels and scores must be 1-D of equal length: {y.shape} {s.shape}")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise DataError("AUROC needs at least one positive and one negative label")
    if np.isnan(s).any():
        raise DataError("AUROC: scores contain NaN")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auroc_null_sd(n1: int, n0: int) -> float:
    """Standard deviation of the AUROC of a random score (Hanley-McNeil under H0)."""
    return math.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0))


def heldout_regions(
    prep_dir: PathLike, genome: dict[str, str], splits: tuple[str, ...] = ("validation", "test")
) -> list[Region]:
    """The held-out intervals of a ``glmx.prep`` output: ``params.heldout`` of its
    ``prep_summary.json`` when present (exact intervals, as :mod:`glmx.examples.dna_demo`
    writes them), else from its split rule: whole validation/test chromosomes and the held-out
    blocks, adjacent blocks merged, each block that follows a training block shortened by the
    prep window at its start (training windows that start in the previous block reach that far
    into it).

    Raises:
        DataError: when the directory has no readable ``prep_summary.json``.
    """
    from glmx.prep.shards import SplitSpec

    path = Path(prep_dir) / "prep_summary.json"
    try:
        params = json.loads(path.read_text())["params"]
        explicit = params.get("heldout")
        if explicit is not None:  # exact held-out intervals (glmx.examples.dna_demo)
            exact = [(str(c), int(s), int(e)) for sp in splits for c, s, e in explicit.get(sp, [])]
            return _merge_regions(exact)
        spec = SplitSpec(**params["split"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a glmx.prep summary with a split rule ({err})") from None
    spec.validate({c: len(s) for c, s in genome.items()})
    # a training window starting in the block before reaches up to window-1 bp into a block
    reach = int(json.loads(path.read_text())["params"].get("window", 512))
    out: list[Region] = []
    for c, s in genome.items():
        bs = spec.block_size
        for b in range(-(-len(s) // bs)):
            if spec.split_of(c, b * bs) not in splits:
                continue
            lo = b * bs
            if b > 0 and spec.split_of(c, lo - 1) not in splits:
                lo += reach
            if lo < min((b + 1) * bs, len(s)):
                out.append((c, lo, min((b + 1) * bs, len(s))))
    return _merge_regions(out)


def _merge_regions(regions: list[Region]) -> list[Region]:
    out: list[Region] = []
    for c, s, e in sorted(regions):
        if out and out[-1][0] == c and s <= out[-1][2]:
            out[-1] = (c, out[-1][1], max(e, out[-1][2]))
        else:
            out.append((c, s, e))
    return out


def read_bed(path: PathLike) -> list[Region]:
    """Intervals of a BED file (first three columns, 0-based half-open; plain, .gz or .zst).

    Raises:
        DataError: naming ``file:line`` of a malformed row.
    """
    out = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            f = line.split()
            try:
                out.append((f[0], int(f[1]), int(f[2])))
            except (IndexError, ValueError):
                raise DataError(
                    f"{path}:{lineno}: a BED row needs chrom, start, end (tab-separated text, "
                    "plain or .gz)"
                ) from None
            if out[-1][2] <= out[-1][1] or out[-1][1] < 0:
                raise DataError(f"{path}:{lineno}: BED interval needs 0 <= start < end")
    return out


@dataclass
class BenchmarkResult:
    """Rows ``{class, n, n_background, score, auroc, auroc_lo, auroc_hi, auprc, auprc_lo,
    auprc_hi}`` (95% bootstrap intervals), the scored variants, construction counts and
    one-line warnings (transcripts skipped, classes left empty and why)."""

    rows: list[dict[str, Any]]
    variants: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def best(self, cls: str, score: str = "minus_llr") -> float | None:
        """The AUROC of ``cls`` by ``score`` (None when not computed)."""
        for r in self.rows:
            if r["class"] == cls and r["score"] == score:
                return r["auroc"]
        return None

    def table(self) -> str:
        """The rows as an aligned text table."""
        head = f"{'class':16} {'n':>5} {'bg':>5} {'score':10} {'AUROC (95% CI)':>22} {'AUPRC (95% CI)':>22}"
        lines = [head]
        for r in self.rows:
            if r["auroc"] is None:
                lines.append(
                    f"{r['class']:16} {r['n']:5d} {r['n_background']:5d} {r['score']:10} {'-':>22} {'-':>22}"
                )
                continue
            ci = lambda m, r=r: f"{r[m]:.3f} [{r[m + '_lo']:.3f}, {r[m + '_hi']:.3f}]"  # noqa: E731
            lines.append(
                f"{r['class']:16} {r['n']:5d} {r['n_background']:5d} {r['score']:10} "
                f"{ci('auroc'):>22} {ci('auprc'):>22}"
            )
        return "\n".join(lines)

    def plot(self, path: PathLike) -> Path:
        """AUROC per class with bootstrap intervals, one marker per score (png/svg/pdf).

        Raises:
            GlmxError: when matplotlib is missing (``pip install 'glmx[plot]'``).
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise GlmxError("plotting needs matplotlib: pip install 'glmx[plot]'") from None
        rows = [r for r in self.rows if r["auroc"] is not None]
        classes = list(dict.fromkeys(r["class"] for r in rows))
        scores = list(dict.fromkeys(r["score"] for r in rows))
        fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(classes) + 2), sharey=True)
        for ax, metric in zip(axes, ("auroc", "auprc"), strict=True):
            for j, sc in enumerate(scores):
                pts = [(classes.index(r["class"]), r) for r in rows if r["score"] == sc]
                y = [i + (j - (len(scores) - 1) / 2) * 0.2 for i, _ in pts]
                x = [r[metric] for _, r in pts]
                err = [[r[metric] - r[metric + "_lo"] for _, r in pts],
                       [r[metric + "_hi"] - r[metric] for _, r in pts]]  # fmt: skip
                ax.errorbar(x, y, xerr=err, fmt="o", capsize=3, label=sc)
            ax.axvline(0.5, color="grey", ls="--", lw=1)
            ax.set_xlabel(metric.upper() + " vs matched background (95% bootstrap CI)")
            ax.set_xlim(0, 1)
        axes[0].set_yticks(range(len(classes)), [f"{c} (n={self._n(c)})" for c in classes])
        axes[0].invert_yaxis()
        axes[1].legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
        plt.close(fig)
        return out

    def _n(self, cls: str) -> int:
        return next(r["n"] for r in self.rows if r["class"] == cls)


def _metrics(
    y: np.ndarray, s: np.ndarray, n_boot: int, rng: np.random.Generator
) -> dict[str, float]:
    out = {"auroc": auroc(y, s), "auprc": auprc(y, s)}
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    boots: dict[str, list[float]] = {"auroc": [], "auprc": []}
    for _ in range(n_boot):  # stratified: positives and background resampled separately
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        boots["auroc"].append(auroc(y[idx], s[idx]))
        boots["auprc"].append(auprc(y[idx], s[idx]))
    for m, vals in boots.items():
        lo, hi = np.percentile(vals, [2.5, 97.5]) if vals else (out[m], out[m])
        # percentile intervals of few resamples can miss the estimate: widen to include it
        out[m + "_lo"], out[m + "_hi"] = float(min(lo, out[m])), float(max(hi, out[m]))
    return out


def annotation_benchmark(
    model: Any,
    fasta: PathLike | dict[str, str],
    gtf: PathLike,
    *,
    regions: PathLike | list[Region] | None = None,
    splits: tuple[str, ...] = ("validation", "test"),
    margin: int | None = None,
    classes: tuple[str, ...] = CLASSES,
    background_distance: int = 100,
    background_ratio: float = 1.0,
    max_per_class: int | None = 500,
    match: str = "trinucleotide",
    window: int = 512,
    batch_size: int = 32,
    device: str | None = None,
    embeddings: bool = True,
    n_boot: int = 200,
    seed: int = 0,
    plot: PathLike | None = None,
) -> BenchmarkResult:
    """Zero-shot variant-effect proxy of ``model`` on ``fasta`` + its ``gtf`` (GTF or GFF3).

    Builds SNVs by class (``splice_donor``, ``splice_acceptor``, ``start_codon``,
    ``stop_codon``, ``stop_gained``, ``nonsynonymous``, ``synonymous``) and background SNVs at
    least ``background_distance`` bp from any annotated feature, matched to each class by
    substitution and flanking bases (``match="trinucleotide"``; ``"substitution"``: ref>alt
    only), scores them with :func:`glmx.eval.score_variants` (``minus_llr``,
    ``abs_llr``, ``embed_dist``) and reports AUROC / AUPRC of each class against its background
    with ``n_boot`` stratified bootstrap 95% intervals.

    Args:
        model: what :func:`glmx.eval.score_variants` takes (module, network or checkpoint path).
        regions: restrict variants to these intervals: a ``glmx.prep`` output directory (its
            held-out ``splits``), a ``.bed`` file or a list of ``(chrom, start, end)``.
        margin: minimum distance of a variant from a region edge (default: ``window // 2``
            when ``regions`` is given: the whole scoring window is inside the region).
        max_per_class: subsample each class to this many SNVs (None: all).
        plot: also write the AUROC/AUPRC plot there (needs the ``plot`` extra).

    Raises:
        DataError: for a bad setting (:func:`check_options`), unreadable inputs, no annotation
            chromosome in the genome, or no variant at all.
    """
    from glmx.eval.scoring import score_variants

    check_options(
        window=window, batch_size=batch_size, n_boot=n_boot,
        background_distance=background_distance, background_ratio=background_ratio,
        max_per_class=max_per_class, margin=margin, splits=splits, device=device, plot=plot,
    )  # fmt: skip
    genome = fasta if isinstance(fasta, dict) else read_fasta(fasta)
    ann = read_annotation(gtf)
    if isinstance(regions, (str, os.PathLike)):
        p = Path(regions)
        regions = heldout_regions(p, genome, splits) if p.is_dir() else read_bed(p)
    if margin is None:
        margin = window // 2 if regions is not None else 0
    sites = build_sites(
        genome, ann, regions=regions, margin=margin, background_distance=background_distance,
        background_ratio=background_ratio, max_per_class=max_per_class, match=match,
        classes=classes, seed=seed,
    )  # fmt: skip
    for w in sites.warnings:  # the CLI prints glmx's warnings as one line each
        warnings.warn(w, stacklevel=1)
    cols = sites.columns
    if not any(sites.pairs[c][0] for c in classes):
        notes = "".join(f"; {w}" for w in sites.warnings)
        raise DataError(
            f"no annotated SNV in the chosen regions of {gtf} (stats: {sites.stats}{notes}); "
            "check that the annotation matches the genome and that the regions cover genes"
        )
    scored = score_variants(
        model, genome, {k: cols[k] for k in ("chrom", "pos", "ref", "alt")}, window=window,
        batch_size=batch_size, device=device, embeddings=embeddings,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    rows = []
    for c in classes:
        pos_rows, bg_rows = sites.pairs[c]
        idx = np.asarray(pos_rows + bg_rows, dtype=np.int64)
        y = np.r_[np.ones(len(pos_rows), bool), np.zeros(len(bg_rows), bool)]
        for sc in SCORES:
            if sc not in scored:
                continue
            row: dict[str, Any] = {"class": c, "n": len(pos_rows), "n_background": len(bg_rows)}
            row["score"] = sc
            if pos_rows and bg_rows:
                row.update(_metrics(y, np.asarray(scored[sc])[idx], n_boot, rng))
            else:
                row.update(dict.fromkeys(("auroc", "auroc_lo", "auroc_hi", "auprc", "auprc_lo",
                                          "auprc_hi")))  # fmt: skip
            rows.append(row)
    variants = {**cols, **{k: np.asarray(scored[k]) for k in ("llr", *SCORES) if k in scored}}
    stats = {**sites.stats, "regions": None if regions is None else len(regions)}
    result = BenchmarkResult(rows, variants, stats, sites.warnings)
    if plot is not None:
        result.plot(plot)
    return result
