"""SNV sets by functional class from a genome and its GTF/GFF annotation (no torch needed).

Used by :func:`glmx.eval.annotation_benchmark`; see docs/science.md for the construction:
canonical splice donor ``GT`` / acceptor ``AG`` dinucleotides, start codons, stop codons,
nonsynonymous / synonymous / stop-gained coding changes (standard codon table, strand-aware),
and background SNVs far from any annotated feature, matched to each class by substitution.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from glmx.errors import DataError
from glmx.eval.annotation_gtf import (
    Annotation,
    TranscriptModel,
    merge_intervals,
    usable_transcripts,
)
from glmx.eval.annotation_gtf import read_annotation as read_annotation  # re-exported

# the classes, in priority order: a variant that falls in several keeps the first
CLASSES = (
    "splice_donor",
    "splice_acceptor",
    "start_codon",
    "stop_codon",
    "stop_gained",
    "nonsynonymous",
    "synonymous",
)
BACKGROUND = "background"
_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")
_BASES = "TCAG"
_AA = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE = {
    a + b + c: _AA[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}


def revcomp(seq: str) -> str:
    """Reverse complement (case kept)."""
    return seq.translate(_COMPLEMENT)[::-1]


Site = tuple[str, int, str, str]  # chrom, 0-based position, ref, alt (forward strand, upper)


def _splice(
    genome: dict[str, str], t: TranscriptModel, ok: np.ndarray, out: dict[Site, str]
) -> None:
    seq = genome[t.chrom]
    for s, e in t.introns():
        if e - s < 8:
            continue
        fwd_donor, fwd_acc = (s, e - 2) if t.strand == "+" else (e - 2, s)
        want = ("GT", "AG") if t.strand == "+" else ("AC", "CT")
        for cls, at, dinuc in (
            ("splice_donor", fwd_donor, want[0]),
            ("splice_acceptor", fwd_acc, want[1]),
        ):
            if seq[at : at + 2].upper() != dinuc:
                continue  # non-canonical (e.g. GC-AG) or misannotated intron: skipped
            for p in (at, at + 1):
                if ok[p]:
                    ref = seq[p].upper()
                    for alt in "ACGT":
                        if alt != ref:
                            _put(out, (t.chrom, p, ref, alt), cls)


_RANK = {c: i for i, c in enumerate(CLASSES)}


def _put(out: dict[Site, str], site: Site, cls: str) -> None:
    old = out.get(site)
    if old is None or _RANK[cls] < _RANK[old]:
        out[site] = cls


def _effects(codon: str, j: int, where: str) -> list[tuple[str, str]]:
    """``(alt, class)`` of each change of base ``j`` of ``codon`` (transcript strand);
    ``where``: ``first`` (the start codon), ``last`` (the stop codon) or ``mid``."""
    key = (codon, j, where)
    hit = _EFFECTS.get(key)
    if hit is not None:
        return hit
    out = []
    for alt in "ACGT":
        if alt == codon[j]:
            continue
        new_aa = CODON_TABLE[codon[:j] + alt + codon[j + 1 :]]
        if where == "first":
            out.append((alt, "start_codon"))
        elif where == "last":
            if new_aa != "*":  # stop to stop (e.g. TAA>TAG) has no class
                out.append((alt, "stop_codon"))
        elif new_aa == "*":
            out.append((alt, "stop_gained"))
        else:
            out.append((alt, "synonymous" if new_aa == CODON_TABLE[codon] else "nonsynonymous"))
    _EFFECTS[key] = out
    return out


_EFFECTS: dict[tuple[str, int, str], list[tuple[str, str]]] = {}


def _orf(seq: str, t: TranscriptModel, pos: list[int]) -> tuple[list[str], str]:
    """The codons of ``pos`` (transcript strand) and why they are not a clean ATG...stop ORF
    (empty when they are)."""
    if len(pos) < 9 or len(pos) % 3:
        return [], "CDS length not a multiple of 3"
    bases = "".join(seq[p] for p in pos).upper()
    if t.strand == "-":
        bases = bases.translate(_COMPLEMENT)
    codons = [bases[i : i + 3] for i in range(0, len(bases), 3)]
    aas = [CODON_TABLE.get(c, "X") for c in codons]
    if codons[0] != "ATG":
        return codons, "no ATG start"
    if "X" in aas:
        return codons, "non-ACGT base in the CDS"
    if "*" in aas[:-1]:
        return codons, "internal stop codon"
    if aas[-1] != "*":
        return codons, "CDS does not end in a stop codon"
    return codons, ""


def _stop_after(t: TranscriptModel, pos: list[int]) -> list[int]:
    """The 3 exonic positions after the CDS end (transcript order): the stop codon of a GTF
    whose CDS excludes it but that has no ``stop_codon`` rows."""
    ex = [p for s, e in merge_intervals(sorted(t.exons)) for p in range(s, e)]
    if t.strand == "-":
        ex = ex[::-1]
    try:
        i = ex.index(pos[-1])
    except ValueError:
        return []
    return ex[i + 1 : i + 4]


def _coding(
    genome: dict[str, str],
    t: TranscriptModel,
    ok: np.ndarray,
    out: dict[Site, str],
    seen: set[tuple[str, int, str, int, str]],
) -> str:
    """Adds the coding classes of ``t``; returns why its CDS is not a clean ATG...stop ORF
    (empty when it is and its sites were added). Without a ``stop_codon`` row, a CDS that
    ends one codon short of a stop is extended by that codon (GTF's CDS excludes the stop).
    ``seen`` skips (position, codon, frame) already done for another isoform."""
    seq = genome[t.chrom]
    pos = t.coding_positions()
    codons, why = _orf(seq, t, pos)
    if why == "CDS does not end in a stop codon" and not t.has_stop_row:
        more = _stop_after(t, pos)
        if len(more) == 3:
            codons2, why2 = _orf(seq, t, pos + more)
            if not why2:
                pos, codons, why = pos + more, codons2, ""
    if why:
        return why
    last = len(codons) - 1
    minus = t.strand == "-"
    for k, codon in enumerate(codons):
        where = "first" if k == 0 else "last" if k == last else "mid"
        for j in range(3):
            p = pos[3 * k + j]
            if not ok[p] or (t.chrom, p, codon, j, where) in seen:
                continue
            seen.add((t.chrom, p, codon, j, where))
            ref = codon[j].translate(_COMPLEMENT) if minus else codon[j]
            for alt, cls in _effects(codon, j, where):
                _put(out, (t.chrom, p, ref, alt.translate(_COMPLEMENT) if minus else alt), cls)
    return ""


def _mask(length: int, intervals: list[tuple[int, int]], pad: int = 0) -> np.ndarray:
    m = np.zeros(length, dtype=bool)
    for s, e in intervals:
        m[max(s - pad, 0) : min(e + pad, length)] = True
    return m


@dataclass
class SiteSet:
    """The constructed variants: columns ``chrom``, ``pos`` (1-based), ``ref``, ``alt``,
    ``cls`` (a functional class or ``background``), ``region`` (``intronic`` /
    ``intergenic`` for background, else ``annotated``), plus per class the row indices of its
    variants and of its matched background (``pairs``), construction counts (``stats``) and
    one-line notes on what was skipped (``warnings``)."""

    columns: dict[str, list]
    pairs: dict[str, tuple[list[int], list[int]]]
    stats: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def build_sites(
    genome: dict[str, str],
    annotation: Annotation,
    *,
    regions: list[tuple[str, int, int]] | None = None,
    margin: int = 0,
    background_distance: int = 100,
    background_ratio: float = 1.0,
    max_per_class: int | None = None,
    match: str = "trinucleotide",
    uppercase_only: bool = True,
    classes: tuple[str, ...] = CLASSES,
    seed: int = 0,
) -> SiteSet:
    """SNVs by class inside ``regions`` (all of the genome when ``None``), at least ``margin``
    bp from a region edge; background SNVs at least ``background_distance`` bp from any
    annotated feature, sampled per class to match its substitutions (``match="substitution"``:
    ref>alt; ``"trinucleotide"``: ref>alt with both flanking bases), ``background_ratio``
    background variants per class variant. ``max_per_class`` subsamples each class (seeded).

    Raises:
        DataError: for an unknown class or match rule, or when no transcript lies on a genome
            chromosome (see :func:`usable_transcripts`).
    """
    bad = [c for c in classes if c not in CLASSES]
    if bad or match not in ("substitution", "trinucleotide"):
        raise DataError(
            f"unknown class {bad} or match {match!r}: classes are {', '.join(CLASSES)}; "
            "match is substitution or trinucleotide"
        )
    transcripts, warns = usable_transcripts(genome, annotation.transcripts)
    allowed = {
        c: _mask(len(s), [(a + margin, b - margin) for cc, a, b in regions if cc == c])
        if regions is not None
        else np.ones(len(s), dtype=bool)
        for c, s in genome.items()
    }
    if uppercase_only:
        for c, s in genome.items():
            arr = np.frombuffer(s.encode("ascii"), dtype=np.uint8)
            allowed[c] &= np.isin(arr, np.frombuffer(b"ACGT", dtype=np.uint8))
    sites: dict[Site, str] = {}
    stats = {"transcripts": len(transcripts), "coding_transcripts": 0}
    stats["skipped_transcripts"] = len(annotation.transcripts) - len(transcripts)
    seen: set[tuple[str, int, str, int, str]] = set()
    why_not: dict[str, int] = defaultdict(int)
    for t in transcripts:
        _splice(genome, t, allowed[t.chrom], sites)
        if t.cds:
            why = _coding(genome, t, allowed[t.chrom], sites, seen)
            stats["coding_transcripts"] += not why
            if why:
                why_not[why] += 1
    with_cds = sum(1 for t in transcripts if t.cds)
    if why_not and not stats["coding_transcripts"]:
        reasons = ", ".join(f"{n} {w}" for w, n in sorted(why_not.items(), key=lambda x: -x[1]))
        no_stop = "" if any(t.has_stop_row for t in transcripts) else " (no stop_codon rows)"
        warns.append(
            f"none of {with_cds} transcript(s) with CDS rows formed a complete ATG...stop ORF "
            f"({reasons}){no_stop}: the start/stop/coding classes are empty"
        )
    by_class: dict[str, list[Site]] = {c: [] for c in classes}
    for site, cls in sorted(sites.items()):
        if cls in by_class:
            by_class[cls].append(site)
    rng = random.Random(seed)
    for c, lst in by_class.items():
        stats[f"{c}_available"] = len(lst)
        if max_per_class is not None and len(lst) > max_per_class:
            by_class[c] = sorted(rng.sample(lst, max_per_class))
    pool = _Pool(genome, annotation, allowed, background_distance, match)
    stats["background_positions"] = pool.size
    cols: dict[str, list] = {k: [] for k in ("chrom", "pos", "ref", "alt", "cls", "region")}
    index: dict[tuple[str, int, str, str], int] = {}

    def row(site: Site, cls: str, region: str) -> int:
        key = (site[0], site[1], site[2], site[3])
        if key not in index:
            index[key] = len(cols["chrom"])
            for k, v in zip(
                cols, (site[0], site[1] + 1, site[2], site[3], cls, region), strict=True
            ):
                cols[k].append(v)
        return index[key]

    pairs: dict[str, tuple[list[int], list[int]]] = {}
    for c, lst in by_class.items():
        pos_rows = [row(site, c, "annotated") for site in lst]
        need: dict[tuple[str, str], int] = defaultdict(int)
        for site in lst:
            need[_key(genome, site, match)] += 1
        bg_rows = []
        for key, n in sorted(need.items()):
            picks = pool.sample(key, round(n * background_ratio), rng)
            bg_rows += [row(s, BACKGROUND, r) for s, r in picks]
        pairs[c] = (pos_rows, bg_rows)
    return SiteSet(cols, pairs, stats, warns)


def _ctx(genome: dict[str, str], chrom: str, p: int, match: str) -> str:
    seq = genome[chrom]
    if match == "substitution":
        return seq[p].upper()
    left = seq[p - 1].upper() if p > 0 else "N"
    right = seq[p + 1].upper() if p + 1 < len(seq) else "N"
    return left + seq[p].upper() + right


def _key(genome: dict[str, str], s: Site, match: str) -> tuple[str, str]:
    return _ctx(genome, s[0], s[1], match), s[3]


class _Pool:
    """Background candidate positions grouped by context (the ref base, or the trinucleotide)."""

    def __init__(
        self, genome: dict[str, str], ann: Annotation, allowed: dict[str, np.ndarray],
        distance: int, match: str,
    ) -> None:  # fmt: skip
        self.by_ctx: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
        for c, seq in genome.items():
            ok = allowed[c] & ~_mask(len(seq), ann.features.get(c, []), distance)
            inside = _mask(len(seq), ann.spans.get(c, []))
            for p in np.flatnonzero(ok).tolist():
                region = "intronic" if inside[p] else "intergenic"
                self.by_ctx[_ctx(genome, c, p, match)].append((c, p, region))
        self.size = sum(len(v) for v in self.by_ctx.values())

    def sample(self, key: tuple[str, str], n: int, rng: random.Random) -> list[tuple[Site, str]]:
        """Up to ``n`` distinct background SNVs with context ``key[0]`` and alt ``key[1]``."""
        cand = self.by_ctx.get(key[0], [])
        picks = rng.sample(cand, min(n, len(cand)))
        ref = key[0][len(key[0]) // 2]
        return [((c, p, ref, key[1]), region) for c, p, region in picks]
