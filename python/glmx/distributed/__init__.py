"""Scaling out on torch's own distributed engine: FSDP2 (``trainer.strategy=fsdp``),
activation checkpointing, and checkpoints of sharded runs that load on any world size.

* :class:`FSDPStrategy`: ``Trainer(strategy="fsdp")`` or ``Trainer(strategy=FSDPStrategy(...))``.
* :func:`prepare_model`: the trainer's strategy hook (FSDP, activation checkpointing).
* :func:`save_sharded` / :func:`load_for`: per-rank checkpoints with the layout in the manifest,
  resharded on load; :func:`consolidate` assembles the full weights of such a checkpoint.

See ``docs/scaling.md``.
"""

from glmx.distributed.checkpoint import LAYOUT, consolidate, load_for, save_sharded
from glmx.distributed.strategy import (
    STRATEGIES,
    FSDPStrategy,
    apply_activation_checkpointing,
    apply_fsdp,
    blocks_of,
    is_sharded,
    prepare_model,
    resolve_strategy,
    strategy_name,
)

__all__ = [
    "LAYOUT",
    "STRATEGIES",
    "FSDPStrategy",
    "apply_activation_checkpointing",
    "apply_fsdp",
    "blocks_of",
    "consolidate",
    "is_sharded",
    "load_for",
    "prepare_model",
    "resolve_strategy",
    "save_sharded",
    "strategy_name",
]
