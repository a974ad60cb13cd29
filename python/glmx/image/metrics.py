"""Classification metrics from a confusion matrix, and its rendering as an image."""

from __future__ import annotations

import torch


def confusion_matrix(
    preds: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = -100
) -> torch.Tensor:
    """``[num_classes, num_classes]`` int64 counts, rows = true class, columns = prediction;
    rows whose label is ``ignore_index`` (padding, skipped images) are left out."""
    keep = labels != ignore_index
    labels, preds = labels[keep].long(), preds[keep].long()
    flat = labels * num_classes + preds
    return torch.bincount(flat.cpu(), minlength=num_classes * num_classes).view(
        num_classes, num_classes
    )


def classification_metrics(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy, macro F1, and per-class precision and recall (tensors of ``[C]``) of a
    confusion matrix. A class never predicted has precision 0; one never present has recall 0
    (and counts in the macro F1 as 0, as scikit-learn's ``zero_division=0``)."""
    cm = cm.double()
    tp = cm.diagonal()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), denom * 0)
    total = cm.sum()
    return {
        "accuracy": tp.sum() / total if total > 0 else total * 0,
        "f1_macro": f1.mean(),
        "precision": precision,
        "recall": recall,
    }


def confusion_image(cm: torch.Tensor, cell: int = 0) -> torch.Tensor:
    """The row-normalized confusion matrix as an RGB uint8 ``[3, H, W]`` heat map (white = 0,
    dark blue = the whole row), ``cell`` pixels per entry (default: about 256 pixels wide)."""
    n = cm.shape[0]
    cell = cell or max(4, 256 // max(n, 1))
    rows = cm.double().sum(1, keepdim=True).clamp(min=1)
    frac = (cm.double() / rows).float()
    white = torch.tensor([255.0, 255.0, 255.0]).view(3, 1, 1)
    blue = torch.tensor([8.0, 48.0, 107.0]).view(3, 1, 1)
    img = white + (blue - white) * frac.unsqueeze(0)
    img = img.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    # thin grid lines between cells
    img[:, ::cell, :] = 200.0
    img[:, :, ::cell] = 200.0
    return img.round().clamp(0, 255).to(torch.uint8)
