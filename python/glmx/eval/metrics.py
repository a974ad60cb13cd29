"""Metrics: AUPRC (global and per-chromosome weighted), held-out masked-LM loss, baselines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    p = _unigram(train_counts)
    n = np.array([eval_counts.get(b, 0) for b in "ACGT"], dtype=np.float64)
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
    rows = _row_losses(model, source, seq_len, batch_size, mask_all, device, max_batches, seed)
    return float(rows.ce.sum() / rows.weight.sum())


@dataclass(frozen=True)
class Margin:
    """Held-out loss of a model and of the unigram baseline on the same predicted positions,
    with a 95% bootstrap interval of their difference (windows resampled, pairs kept)."""

    model_loss: float
    unigram_loss: float
    margin: float  # unigram - model: > 0 when the model is better
    lo: float
    hi: float
    windows: int
    positions: float  # summed loss weight (uppercase predicted positions)


def mlm_margin(
    model: Any,
    source: Any,
    train_counts: Mapping[str, int],
    *,
    seq_len: int = 512,
    batch_size: int = 32,
    device: str | None = None,
    max_batches: int | None = None,
    seed: int = 0,
    n_boot: int = 1000,
) -> Margin:
    """How much better ``model`` predicts held-out bases than a unigram model fitted on
    ``train_counts`` (``prep_summary.json``'s training ``composition``), in nats per predicted
    uppercase base, as :func:`mlm_loss` evaluates (every predicted position ``[MASK]``ed).

    Both losses are taken on the very same positions, so the interval is that of a paired
    difference: windows are resampled with replacement ``n_boot`` times (seeded) and the
    2.5/97.5 percentiles of the margin reported. Neighbouring bases are correlated, so whole
    windows, not positions, are the resampled unit."""
    rows = _row_losses(model, source, seq_len, batch_size, True, device, max_batches, seed)
    log_p = np.log(_unigram(train_counts))
    uni = -(rows.bases * log_p).sum(axis=1)  # per window, weighted like the model's loss
    w = rows.weight
    total = w.sum()
    model_loss, unigram = float(rows.ce.sum() / total), float(uni.sum() / total)
    gain = uni - rows.ce
    rng = np.random.default_rng(seed)
    boot = []
    chunk = max(1, 2_000_000 // len(w))  # resamples per draw: memory stays ~50 MB
    for done in range(0, n_boot, chunk):
        pick = rng.integers(0, len(w), size=(min(chunk, n_boot - done), len(w)))
        weight = w[pick].sum(axis=1)
        ok = weight > 0  # a resample of windows without a predicted base has no margin
        boot.append(gain[pick].sum(axis=1)[ok] / weight[ok])
    lo, hi = np.percentile(np.concatenate(boot), [2.5, 97.5])
    return Margin(
        model_loss, unigram, unigram - model_loss, float(lo), float(hi), len(w), float(total)
    )


@dataclass(frozen=True)
class _Rows:
    ce: np.ndarray  # per window: summed weighted cross-entropy of the model
    weight: np.ndarray  # per window: summed loss weight
    bases: np.ndarray  # per window x ACGT: summed loss weight of the true base


def _row_losses(
    model: Any,
    source: Any,
    seq_len: int,
    batch_size: int,
    mask_all: bool,
    device: str | None,
    max_batches: int | None,
    seed: int,
) -> _Rows:
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
    ce_rows, w_rows, base_rows = [], [], []
    with torch.inference_mode():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            logits = net(batch["input_ids"].to(dev)).float()
            labels = batch["labels"].to(dev)
            # base tokens A C G T are ids 3..6 (glmx.data's vocabulary); an [UNK] label (an N
            # or IUPAC code) has no unigram probability and is not a base: it does not count
            w = batch["loss_weight"].to(dev) * ((labels >= 3) & (labels <= 6))
            ce = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), labels, reduction="none", ignore_index=-100
            )
            ce_rows.append((ce * w).sum(dim=1).double().cpu())
            w_rows.append(w.sum(dim=1).double().cpu())
            onehot = torch.stack([(labels == 3 + b) for b in range(4)], dim=-1)
            base_rows.append((onehot * w.unsqueeze(-1)).sum(dim=1).double().cpu())
    net.train(was_training)
    rows = _Rows(
        torch.cat(ce_rows).numpy() if ce_rows else np.zeros(0),
        torch.cat(w_rows).numpy() if w_rows else np.zeros(0),
        torch.cat(base_rows).numpy() if base_rows else np.zeros((0, 4)),
    )
    if rows.weight.sum() == 0:
        raise DataError(f"no predicted uppercase positions in {source!r}")
    return rows


def _unigram(train_counts: Mapping[str, int]) -> np.ndarray:
    """Base probabilities A C G T fitted on uppercase training counts (add-one)."""
    fit = np.array([train_counts.get(b, 0) for b in "ACGT"], dtype=np.float64) + 1.0
    return fit / fit.sum()
