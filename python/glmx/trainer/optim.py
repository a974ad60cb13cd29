"""Optimizers and LR schedulers: the ``configure_optimizers`` forms and step-wise schedules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from glmx.errors import TrainError

ACCEPTED_FORMS = (
    "configure_optimizers must return one of: an optimizer; a list/tuple of optimizers; "
    "(optimizers, schedulers) as two lists; a dict {'optimizer': opt, 'lr_scheduler': sched "
    "or {'scheduler': sched, 'interval': 'step'|'epoch', 'frequency': n, 'monitor': name}}; "
    "or a list of such dicts"
)


@dataclass
class SchedulerConfig:
    """One LR scheduler and when it steps (Lightning's scheduler dict)."""

    scheduler: Any
    interval: str = "epoch"
    frequency: int = 1
    monitor: str | None = None
    name: str | None = None
    strict: bool = True


def _scheduler_config(value: Any) -> SchedulerConfig:
    if isinstance(value, dict):
        if "scheduler" not in value:
            raise TrainError(f"lr_scheduler dict needs a 'scheduler' key, got {sorted(value)}")
        extra = set(value) - {"scheduler", "interval", "frequency", "monitor", "name", "strict"}
        if extra:
            raise TrainError(f"unknown lr_scheduler keys {sorted(extra)}")
        cfg = SchedulerConfig(**value)
    else:
        cfg = SchedulerConfig(scheduler=value)
    if cfg.interval not in ("step", "epoch"):
        raise TrainError(f"lr_scheduler interval must be 'step' or 'epoch', got {cfg.interval!r}")
    if cfg.frequency < 1:
        raise TrainError(f"lr_scheduler frequency must be >= 1, got {cfg.frequency}")
    if isinstance(cfg.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not cfg.monitor:
        raise TrainError("ReduceLROnPlateau needs 'monitor' in its lr_scheduler dict")
    return cfg


def _is_optimizer(value: Any) -> bool:
    return isinstance(value, torch.optim.Optimizer)


def parse_configure_optimizers(
    result: Any,
) -> tuple[list[torch.optim.Optimizer], list[SchedulerConfig]]:
    """Normalise any accepted ``configure_optimizers`` return value."""
    if _is_optimizer(result):
        return [result], []
    if isinstance(result, dict):
        if "optimizer" not in result:
            raise TrainError(f"{ACCEPTED_FORMS}; got a dict with keys {sorted(result)}")
        opt = result["optimizer"]
        if not _is_optimizer(opt):
            raise TrainError(f"{ACCEPTED_FORMS}; 'optimizer' is a {type(opt).__name__}")
        scheds = [] if result.get("lr_scheduler") is None else [result["lr_scheduler"]]
        configs = [_scheduler_config(s) for s in scheds]
        if "monitor" in result:
            for cfg in configs:
                cfg.monitor = cfg.monitor or result["monitor"]
        return [opt], configs
    if isinstance(result, Sequence) and not isinstance(result, str):
        items = list(result)
        if len(items) == 2 and all(isinstance(x, Sequence) for x in items):
            opts, scheds = list(items[0]), list(items[1])
            if opts and all(_is_optimizer(o) for o in opts):
                return opts, [_scheduler_config(s) for s in scheds]
        if items and all(_is_optimizer(o) for o in items):
            return items, []
        if items and all(isinstance(o, dict) for o in items):
            opts, configs = [], []
            for item in items:
                o, c = parse_configure_optimizers(item)
                opts += o
                configs += c
            return opts, configs
    raise TrainError(f"{ACCEPTED_FORMS}; got {type(result).__name__}")


def constant_with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int) -> Any:
    """Linear warmup from 0 to the base LR over ``warmup_steps``, then constant (step-wise)."""

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
) -> Any:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` x base LR at ``total_steps``."""
    if total_steps <= warmup_steps:
        raise TrainError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def param_groups_no_decay(
    module: torch.nn.Module, weight_decay: float, no_decay_ndim: int = 1
) -> list[dict[str, Any]]:
    """Two parameter groups: weight decay on matrices, none on biases and norm weights."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= no_decay_ndim else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
