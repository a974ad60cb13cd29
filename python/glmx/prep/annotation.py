"""Transcripts from a GTF or GFF3 annotation, and the TSS-centred promoter regions of GPN."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from glmx.errors import DataError
from glmx.prep.genome import PathLike, open_text
from glmx.prep.intervals import Interval

_GTF_ATTR = re.compile(r'(\S+)\s+"([^"]*)"')


@dataclass(frozen=True)
class Transcript:
    """One transcript: 0-based half-open ``[start, end)`` on ``chrom``, ``strand`` '+' or '-'."""

    chrom: str
    start: int
    end: int
    strand: str
    transcript_id: str

    @property
    def tss(self) -> int:
        """0-based position of the transcription start site (strand-aware)."""
        return self.start if self.strand == "+" else self.end - 1


def attributes(field: str, gff3: bool) -> dict[str, str]:
    """Column 9 of a GTF (``key "value";``) or GFF3 (``key=value;``) row as a dict."""
    if gff3:
        out = {}
        for item in field.strip().split(";"):
            if "=" in item:
                k, v = item.split("=", 1)
                out[k.strip()] = v.strip()
        return out
    return dict(_GTF_ATTR.findall(field))


def _is_mrna(feature: str, attrs: dict[str, str]) -> bool:
    if feature == "mRNA":  # GFF3 (RefSeq, Ensembl)
        return True
    if feature != "transcript":
        return False
    biotype = attrs.get("transcript_biotype") or attrs.get("transcript_type") or attrs.get("gbkey")
    return biotype in ("mRNA", "protein_coding")


def read_mrna_transcripts(path: PathLike) -> list[Transcript]:
    """Protein-coding mRNA transcripts of a GTF (``transcript`` rows whose biotype is mRNA /
    protein_coding) or GFF3 (``mRNA`` rows); the format is told by the extension or sniffed.

    Raises:
        DataError: naming ``file:line`` for a row with bad coordinates or strand, or when the
            file holds no mRNA transcript at all.
    """
    p = os.fspath(path)
    gff3 = ".gff" in os.path.basename(p)
    out: list[Transcript] = []
    with open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("#"):
                if line.startswith("##gff-version 3"):
                    gff3 = True
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 9:
                continue
            if cols[2] not in ("mRNA", "transcript"):
                continue
            attrs = attributes(cols[8], gff3)
            if not _is_mrna(cols[2], attrs):
                continue
            try:
                start, end = int(cols[3]) - 1, int(cols[4])
            except ValueError:
                raise DataError(
                    f"{p}:{lineno}: start/end are not integers: {cols[3]!r} {cols[4]!r}"
                ) from None
            if cols[6] not in ("+", "-") or end <= start:
                raise DataError(
                    f"{p}:{lineno}: bad strand {cols[6]!r} or interval {cols[3]}-{cols[4]}"
                )
            tid = attrs.get("transcript_id") or attrs.get("ID") or f"{cols[0]}:{start}-{end}"
            out.append(Transcript(cols[0], start, end, cols[6], tid))
    if not out:
        raise DataError(
            f"{p}: no protein-coding mRNA transcripts (GTF 'transcript' rows with "
            "transcript_biotype \"mRNA\", or GFF3 'mRNA' rows)"
        )
    return out


def promoter_regions(
    transcripts: list[Transcript], upstream: int = 256, downstream: int = 256
) -> list[Interval]:
    """``[TSS - upstream, TSS + downstream)`` in transcript orientation, as forward-strand
    intervals (not merged, not clipped)."""
    out = []
    for t in transcripts:
        if t.strand == "+":
            out.append((t.chrom, t.tss - upstream, t.tss + downstream))
        else:
            # On '-' upstream lies to the right; TSS base t.end - 1 is inside the window.
            out.append((t.chrom, t.tss + 1 - downstream, t.tss + 1 + upstream))
    return out
