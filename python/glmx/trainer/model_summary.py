"""`ModelSummary`: Lightning's model table (name, type, params, trainable, mode; totals and the
estimated size in MB), printed once when ``fit`` starts. On by default
(``Trainer(enable_model_summary=False)`` turns it off)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

from glmx.errors import TrainError
from glmx.trainer.callbacks import Callback

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.trainer")


def human_count(number: float) -> str:
    """``123`` -> ``'123  '``, ``1234`` -> ``'1.2 K'``, ``2e6`` -> ``'2.0 M'`` (Lightning's)."""
    labels = ["  ", "K", "M", "B", "T"]
    number = float(number)
    index = 0 if number <= 0 else min(int(math.floor(math.log10(number) / 3)), len(labels) - 1)
    if index == 0:
        return f"{int(number):,d} {labels[0]}"
    value = number / 10 ** (3 * index)
    return f"{value:,.1f} {labels[index]}" if value < 100 else f"{value:,.0f} {labels[index]}"


def _params(module: torch.nn.Module) -> tuple[int, int]:
    total = trainable = 0
    for p in module.parameters():
        n = p.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def summarize(model: torch.nn.Module, max_depth: int = 1) -> dict[str, Any]:
    """The summary's data: ``rows`` (index, name, type, params, trainable, mode) for modules
    down to ``max_depth`` levels (``-1``: all), and the totals."""
    if not isinstance(max_depth, int) or max_depth < -1:
        raise TrainError(f"ModelSummary max_depth must be -1 or >= 0, got {max_depth!r}")
    rows = []
    if max_depth != 0:
        for name, mod in model.named_modules():
            if not name:
                continue
            depth = name.count(".") + 1
            if max_depth != -1 and depth > max_depth:
                continue
            total, trainable = _params(mod)
            rows.append(
                {
                    "name": name,
                    "type": type(mod).__name__,
                    "params": total,
                    "trainable": trainable,
                    "mode": "train" if mod.training else "eval",
                }
            )
    total, trainable = _params(model)
    size_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    size_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    modes = [m.training for name, m in model.named_modules() if name]  # as Lightning
    return {
        "rows": rows,
        "total_params": total,
        "trainable_params": trainable,
        "size_mb": size_bytes / 1e6,
        "train_modules": sum(modes),
        "eval_modules": len(modes) - sum(modes),
    }


def format_summary(data: dict[str, Any]) -> str:
    """The table as Lightning prints it."""
    cols = [
        (" ", [str(i) for i in range(len(data["rows"]))]),
        ("Name", [r["name"] for r in data["rows"]]),
        ("Type", [r["type"] for r in data["rows"]]),
        ("Params", [human_count(r["params"]) for r in data["rows"]]),
        ("Trainable", [human_count(r["trainable"]) for r in data["rows"]]),
        ("Mode", [r["mode"] for r in data["rows"]]),
    ]
    widths = [max([len(h)] + [len(v) for v in vals]) for h, vals in cols]
    width = sum(widths) + 3 * len(cols)
    lines = [" | ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)), "-" * width]
    for i in range(len(data["rows"])):
        lines.append(
            " | ".join(vals[i].ljust(w) for (_, vals), w in zip(cols, widths, strict=True))
        )
    lines.append("-" * width)
    total, trainable = data["total_params"], data["trainable_params"]
    for value, label in (
        (human_count(trainable), "Trainable params"),
        (human_count(total - trainable), "Non-trainable params"),
        (human_count(total), "Total params"),
        (f"{data['size_mb']:,.3f}", "Total estimated model params size (MB)"),
        (str(data["train_modules"]), "Modules in train mode"),
        (str(data["eval_modules"]), "Modules in eval mode"),
    ):
        lines.append(value.ljust(10) + label)
    return "\n".join(lines)


class ModelSummary(Callback):
    """Prints the model's layers down to ``max_depth`` (``-1``: every level, ``0``: totals only)
    with parameter counts, trainable counts and train/eval mode, then the totals and the
    estimated size of parameters and buffers in MB (Lightning's ``ModelSummary``).
    The text is also kept as ``self.text`` and logged to the ``glmx.trainer`` logger."""

    def __init__(self, max_depth: int = 1, **_: Any) -> None:
        summarize(torch.nn.Module(), max_depth)  # validates max_depth
        self.max_depth = max_depth
        self.text = ""

    def on_fit_start(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.global_rank != 0 or trainer.fast_dev_run:
            return
        self.text = format_summary(summarize(pl_module, self.max_depth))
        from glmx.trainer._console import write_line

        write_line("\n" + self.text)
