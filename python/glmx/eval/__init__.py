"""Evaluation of genomic language models: variant effect scores, AUPRC, held-out loss.

``score_variants(model, genome_fasta, variants)`` computes GPN's zero-shot scores (masked LLR
averaged over both strands, and embedding distance); ``evaluate_scores`` turns them into
AUPRC, global and per-chromosome weighted (TraitGym). ``glmx score`` is the command line.
``annotation_benchmark(model, fasta, gtf)`` is an offline proxy on real annotation (splice
sites, codons vs matched background; ``glmx bench-vep``). ``mlm_margin`` is the held-out loss
margin over the unigram baseline with a paired bootstrap interval.
"""

from glmx.eval.annotation_benchmark import BenchmarkResult, annotation_benchmark, auroc
from glmx.eval.loading import as_network, load_model
from glmx.eval.metrics import (
    UNIFORM_LOSS,
    Margin,
    auprc,
    auprc_by_chrom,
    mlm_loss,
    mlm_margin,
    unigram_loss,
)
from glmx.eval.scoring import PREDICTORS, evaluate_scores, score_variants
from glmx.eval.variants import read_variants

__all__ = [
    "BenchmarkResult",
    "Margin",
    "PREDICTORS",
    "UNIFORM_LOSS",
    "annotation_benchmark",
    "as_network",
    "auprc",
    "auroc",
    "auprc_by_chrom",
    "evaluate_scores",
    "load_model",
    "mlm_loss",
    "mlm_margin",
    "read_variants",
    "score_variants",
    "unigram_loss",
]
