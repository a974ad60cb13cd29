"""Metrics: AUPRC (global and per-chromosome weighted), held-out masked-LM loss, baselines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from glmx.errors import DataError


def auprc(labels: Sequence[Any] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn's
    ``average_precision_score``: step-wise, ties broken as one threshold).

    Raises:
        DataError: when lengths differ, there is no positive label, or a score is NaN.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise DataError(
            f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}"
        )
    if not y.any():
        raise DataError("AUPRC needs at least one positive label")
    if np.isnan(s).any():
        raise DataError("AUPRC: scores contain NaN")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # last index of each distinct score: all tied variants enter at one threshold
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auprc_by_chrom(
    chroms: Sequence[str] | np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
) -> tuple[float, dict[str, float]]:
    """TraitGym's per-chromosome AUPRC: AUPRC on each chromosome that has a positive, averaged
    with weights ``n_chrom / n`` (n counts variants on those chromosomes). Returns
    ``(weighted mean, {chrom: auprc})``."""
    c = np.asarray(chroms).astype(str)
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    per: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for chrom in sorted(set(c.tolist())):
        sel = c == chrom
        if y[sel].any():
            per[chrom] = auprc(y[sel], s[sel])
            sizes[chrom] = int(sel.sum())
    if not per:
        raise DataError("AUPRC needs at least one positive label")
    total = sum(sizes.values())
    return float(sum(per[k] * sizes[k] / total for k in per)), per


def unigram_loss(train_counts: Mapping[str, int], eval_counts: Mapping[str, int]) -> float:
    """Cross-entropy (nats) on the evaluated bases of a unigram model fitted on training bases.

    GPN's evaluation weighs uppercase bases only (lowercase weight 0), so both count tables are
    read over the uppercase keys ``A C G T`` (``prep_summary.json``'s ``composition``).
    """
    bases = "ACGT"
    fit = np.array([train_counts.get(b, 0) for b in bases], dtype=np.float64) + 1.0  # add-one
    p = fit / fit.sum()
    n = np.array([eval_counts.get(b, 0) for b in bases], dtype=np.float64)
    if n.sum() == 0:
        raise DataError("no uppercase bases to evaluate the unigram baseline on")
    return float(-(n * np.log(p)).sum() / n.sum())


UNIFORM_LOSS = math.log(4.0)


def mlm_loss(
    model: Any,
    source: Any,
    *,
    seq_len: int = 512,
    batch_size: int = 32,
    mask_all: bool = True,
    device: str | None = None,
    max_batches: int | None = None,
    seed: int = 0,
) -> float:
    """Held-out masked-LM loss (nats per predicted uppercase base) of ``model`` on ``source``
    (shard files or a glob; evaluation mode: no RC, lowercase weight 0, fixed masks).

    ``mask_all=True`` replaces every predicted position by ``[MASK]`` (no 10% random / 10% kept
    tokens), so the model never sees the base it predicts: the number is then directly
    comparable with the unigram and uniform baselines. ``mask_all=False`` is GPN's 80/10/10 loss.
    """
    import torch

    from glmx.data import DnaMlmLoader
    from glmx.eval.loading import as_network

    net = as_network(model)
    dev = torch.device(device) if device else next(net.parameters()).device
    loader = DnaMlmLoader(
        source,
        seq_len=seq_len,
        batch_size=batch_size,
        train=False,
        seed=seed,
        mask_fraction=1.0 if mask_all else 0.8,
        random_fraction=0.0 if mask_all else 0.1,
    )
    was_training = net.training
    net.eval()
    total, weight = 0.0, 0.0
    with torch.inference_mode():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            logits = net(batch["input_ids"].to(dev)).float()
            labels = batch["labels"].to(dev)
            w = batch["loss_weight"].to(dev) * (labels != -100)
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                reduction="none",
                ignore_index=-100,
            )
            total += float((ce * w.reshape(-1)).sum())
            weight += float(w.sum())
    net.train(was_training)
    if weight == 0:
        raise DataError(f"no predicted uppercase positions in {source!r}")
    return total / weight
