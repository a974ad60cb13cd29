"""Reading a GTF / GFF3 annotation into transcript models, and matching it to a genome.

Used by :mod:`glmx.eval.annotation_sites` (see docs/science.md): the format is told by the
attribute syntax, and transcripts off the genome are skipped with a counted warning.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

from glmx.errors import DataError
from glmx.prep.annotation import attributes
from glmx.prep.genome import PathLike, open_text

_FEATURES = {"exon", "CDS", "stop_codon", "start_codon"}
# rows whose span marks annotated sequence for the background exclusion (not gene/mRNA spans)
_ANNOTATED = {"exon", "CDS", "stop_codon", "start_codon", "five_prime_UTR", "three_prime_UTR",
              "UTR", "5UTR", "3UTR"}  # fmt: skip
_SPANS = {"gene", "transcript", "mRNA", "ncRNA_gene", "pseudogene", "lnc_RNA", "primary_transcript"}


@dataclass
class TranscriptModel:
    """One transcript's exons and coding intervals (0-based half-open, forward strand)."""

    chrom: str
    strand: str
    transcript_id: str
    exons: list[tuple[int, int]] = field(default_factory=list)
    cds: list[tuple[int, int]] = field(default_factory=list)
    has_stop_row: bool = False

    def introns(self) -> list[tuple[int, int]]:
        """Gaps between consecutive (sorted, merged) exons."""
        ex = merge_intervals(sorted(self.exons))
        return [(a[1], b[0]) for a, b in zip(ex, ex[1:], strict=False) if b[0] > a[1]]

    def coding_positions(self) -> list[int]:
        """Coding positions in transcript order (5' to 3')."""
        pos = [p for s, e in merge_intervals(sorted(self.cds)) for p in range(s, e)]
        return pos if self.strand == "+" else pos[::-1]


@dataclass
class Annotation:
    """Transcript models plus, per chromosome, annotated feature intervals (exons, CDS, UTRs,
    codons) and transcript/gene spans, for the background's distance rule."""

    transcripts: list[TranscriptModel]
    features: dict[str, list[tuple[int, int]]]
    spans: dict[str, list[tuple[int, int]]]


def merge_intervals(iv: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted intervals with overlapping or touching ones merged."""
    out: list[tuple[int, int]] = []
    for s, e in iv:
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


_GTF_SYNTAX = re.compile(r'^\s*[^\s=;"]+\s+"')  # key "value";
_GFF3_SYNTAX = re.compile(r"^\s*[^\s=;]+=")  # key=value


def sniff_gff3(attributes: str) -> bool | None:
    """True for GFF3 attribute syntax (``key=value``), False for GTF's (``key "value";``),
    None when the column shows neither (e.g. ``.``)."""
    if _GTF_SYNTAX.match(attributes):
        return False
    if _GFF3_SYNTAX.match(attributes):
        return True
    return None


def read_annotation(path: PathLike) -> Annotation:
    """Exons and CDS (plus ``stop_codon`` rows: GTF's CDS excludes the stop codon, GFF3's
    includes it) grouped by transcript, from a GTF (``transcript_id``) or GFF3 (``Parent``).
    The format is told by the attribute syntax of the first row that has attributes
    (``key "value";`` or ``key=value``); the file name and a ``##gff-version 3`` header only
    decide when no row shows either.

    Raises:
        DataError: naming ``file:line`` for a malformed row, or when no exon row is found.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise DataError(f"annotation file not found: {p}")
    gff3 = ".gff" in os.path.basename(p).lower()
    sniffed: bool | None = None
    models: dict[str, TranscriptModel] = {}
    features: dict[str, list[tuple[int, int]]] = defaultdict(list)
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    with open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("#"):
                gff3 = gff3 or line.startswith("##gff-version 3")
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 9:
                if line.strip():
                    raise DataError(f"{p}:{lineno}: expected 9 tab-separated GTF/GFF columns")
                continue
            chrom, kind, strand = cols[0], cols[2], cols[6]
            if kind not in _FEATURES and kind not in _ANNOTATED and kind not in _SPANS:
                continue
            try:
                start, end = int(cols[3]) - 1, int(cols[4])
            except ValueError:
                raise DataError(f"{p}:{lineno}: start/end are not integers") from None
            if end <= start or start < 0:
                raise DataError(f"{p}:{lineno}: bad interval {cols[3]}-{cols[4]}")
            if kind in _SPANS:
                spans[chrom].append((start, end))
                continue
            features[chrom].append((start, end))
            if kind not in _FEATURES:
                continue
            if strand not in ("+", "-"):
                raise DataError(f"{p}:{lineno}: strand must be + or -, got {strand!r}")
            if sniffed is None:
                sniffed = sniff_gff3(cols[8])
            a = attributes(cols[8], gff3 if sniffed is None else sniffed)
            parents = a.get("transcript_id") or a.get("Parent") or ""
            for tid in filter(None, parents.split(",")):
                m = models.setdefault(tid, TranscriptModel(chrom, strand, tid))
                if m.chrom != chrom or m.strand != strand:
                    raise DataError(f"{p}:{lineno}: transcript {tid!r} changes chromosome/strand")
                if kind == "exon":
                    m.exons.append((start, end))
                elif kind in ("CDS", "stop_codon"):
                    m.cds.append((start, end))
                    m.has_stop_row |= kind == "stop_codon"
    if not any(m.exons for m in models.values()):
        raise DataError(f"{p}: no exon rows with a transcript_id (GTF) or Parent (GFF3)")
    return Annotation(
        list(models.values()),
        {c: merge_intervals(sorted(v)) for c, v in features.items()},
        {c: merge_intervals(sorted(v)) for c, v in spans.items()},
    )


def usable_transcripts(
    genome: dict[str, str], transcripts: list[TranscriptModel]
) -> tuple[list[TranscriptModel], list[str]]:
    """The transcripts on a genome chromosome and inside its length, plus one warning line per
    kind of skip: a full-genome annotation with a one-chromosome FASTA is the common case, and
    a transcript past its chromosome's end means another assembly.

    Raises:
        DataError: when no transcript is usable, naming both chromosome sets.
    """
    missing: dict[str, int] = defaultdict(int)
    beyond: dict[str, int] = defaultdict(int)
    out = []
    for t in transcripts:
        if t.chrom not in genome:
            missing[t.chrom] += 1
        elif max((e for _, e in t.exons + t.cds), default=0) > len(genome[t.chrom]):
            beyond[t.chrom] += 1
        else:
            out.append(t)
    ann_names = sorted({t.chrom for t in transcripts})
    if not out and missing and not beyond:
        raise DataError(
            f"no annotation chromosome is in the genome: annotation has {_names(ann_names)}, "
            f"genome has {_names(sorted(genome))}{_prefix_hint(ann_names, genome)}"
        )
    if not out and beyond:
        raise DataError(
            f"every transcript on a genome chromosome ends past that chromosome's end "
            f"({_names(sorted(beyond))}): the annotation is for another assembly"
        )
    warns = []
    if missing:
        warns.append(
            f"skipped {sum(missing.values())} transcript(s) on {len(missing)} chromosome(s) "
            f"not in the genome: {_names(sorted(missing))}"
        )
    if beyond:
        warns.append(
            f"skipped {sum(beyond.values())} transcript(s) that end past their chromosome's end "
            f"(another assembly?): {_names(sorted(beyond))}"
        )
    return out, warns


def _names(names: list[str], k: int = 8) -> str:
    more = f" (+{len(names) - k} more)" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def _prefix_hint(ann: list[str], genome: dict[str, str]) -> str:
    strip = {n.removeprefix("chr") for n in ann}
    if strip & {n.removeprefix("chr") for n in genome}:
        return "; they differ by a 'chr' prefix: rename one side's chromosomes"
    return "; use the annotation of this assembly"
