"""Training strategies beyond DDP: torch FSDP2 (``fully_shard`` per block) and activation
checkpointing. The trainer calls :func:`prepare_model` once per fit, after
``configure_optimizers`` and before a checkpoint is restored."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from glmx.errors import TrainError

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.distributed")

STRATEGIES = ("auto", "ddp", "ddp_spawn", "single_device", "fsdp")


@dataclass
class FSDPStrategy:
    """Fully sharded data parallel with torch's FSDP2 (``torch.distributed.fsdp.fully_shard``).

    Each block (``module.fsdp_blocks()``, else the children of every ``nn.ModuleList``) is one
    FSDP unit, the module itself the root unit. Parameters, gradients and optimizer state are
    sharded along dim 0 over all ranks; a block's full weights exist only while it runs.

    Args:
        cpu_offload: Keep sharded parameters, gradients and optimizer state in CPU memory
            (``CPUOffloadPolicy``; CUDA only: on CPU they are there already).
        reshard_after_forward: Free a block's gathered weights after its forward (saves memory,
            gathers again in backward). The root unit never reshards after forward.
        activation_checkpointing: Recompute each block's activations in backward (also settable
            as ``Trainer(activation_checkpointing=True)``).

    ``precision="bf16-mixed"`` becomes ``MixedPrecisionPolicy(param_dtype=bf16,
    reduce_dtype=fp32)``: weights are gathered in bf16, gradients reduced in fp32, the sharded
    master weights and optimizer state stay fp32.
    """

    cpu_offload: bool = False
    reshard_after_forward: bool = True
    activation_checkpointing: bool = False
    name: str = "fsdp"


def resolve_strategy(strategy: Any, activation_checkpointing: bool = False) -> Any:
    """The trainer's ``strategy`` argument as given (a name) or an :class:`FSDPStrategy`.

    ``"fsdp"`` becomes ``FSDPStrategy()``; a strategy object passes through. Raises
    :class:`glmx.TrainError` for an unknown name.
    """
    if isinstance(strategy, FSDPStrategy):
        if activation_checkpointing:
            strategy.activation_checkpointing = True
        return strategy
    if strategy not in STRATEGIES:
        raise TrainError(
            f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}"
        )
    if strategy == "fsdp":
        return FSDPStrategy(activation_checkpointing=activation_checkpointing)
    return strategy


def strategy_name(strategy: Any) -> str:
    """The name ``glmx.trainer._distributed.setup`` validates (``"fsdp"`` for objects)."""
    return getattr(strategy, "name", strategy)


def is_sharded(trainer: Trainer) -> bool:
    """Whether ``trainer`` runs FSDP (its checkpoints are written per rank)."""
    return isinstance(getattr(trainer, "strategy", None), FSDPStrategy)


def blocks_of(module: nn.Module) -> list[nn.Module]:
    """The FSDP / activation-checkpointing units: ``module.fsdp_blocks()`` when defined, else
    the children of every ``nn.ModuleList`` (GPN's ``layers``, the transformer's ``blocks``)."""
    fn = getattr(module, "fsdp_blocks", None)
    if callable(fn):
        return list(fn())
    found: list[nn.Module] = []
    for sub in module.modules():
        if isinstance(sub, nn.ModuleList) and not any(sub is b or _inside(sub, b) for b in found):
            found.extend(sub)
    return found


def _inside(sub: nn.Module, block: nn.Module) -> bool:
    return any(sub is m for m in block.modules())


def _ensure_process_group(trainer: Trainer) -> None:
    # FSDP needs a process group even on one rank (a resume on fewer GPUs, a laptop test).
    if dist.is_initialized():
        return
    backend = "nccl" if trainer.device.type == "cuda" else "gloo"
    store = dist.HashStore()
    dist.init_process_group(backend, store=store, rank=0, world_size=1)


def _mp_policy(trainer: Trainer) -> Any:
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if trainer.precision == "bf16-mixed":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def apply_activation_checkpointing(module: nn.Module) -> int:
    """Recompute every block's activations in backward (non-reentrant, composable
    ``torch.distributed._composable.checkpoint``: parameter names do not change). Returns the
    number of blocks."""
    from torch.distributed._composable import checkpoint

    blocks = blocks_of(module)
    if not blocks:
        raise TrainError(
            f"activation_checkpointing=True but {type(module).__name__} has no blocks: define "
            "fsdp_blocks() or keep the layers in an nn.ModuleList"
        )
    for block in blocks:
        checkpoint(block)
    return len(blocks)


def apply_fsdp(module: nn.Module, trainer: Trainer, strategy: FSDPStrategy) -> int:
    """``fully_shard`` each block, then the module (the root unit); returns the block count."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    _ensure_process_group(trainer)
    mesh = init_device_mesh(trainer.device.type, (dist.get_world_size(),))
    offload: OffloadPolicy = OffloadPolicy()
    if strategy.cpu_offload:
        if trainer.device.type != "cuda":
            log.warning("FSDP cpu_offload has no effect on CPU: the shards are in CPU memory")
        else:
            offload = CPUOffloadPolicy()
    common = {"mesh": mesh, "mp_policy": _mp_policy(trainer), "offload_policy": offload}
    blocks = blocks_of(module)
    for block in blocks:
        fully_shard(block, reshard_after_forward=strategy.reshard_after_forward, **common)
    fully_shard(module, reshard_after_forward=False, **common)
    return len(blocks)


def prepare_model(trainer: Trainer, model: Module) -> Any:
    """The trainer's strategy hook: apply activation checkpointing and FSDP to ``model`` and
    return the step runner to use, or ``None`` to let the trainer do its default (plain module
    or DDP). Under FSDP the optimizers and schedulers are built again from
    ``configure_optimizers`` because sharding replaces the parameters."""
    strategy = getattr(trainer, "strategy", None)
    wants_ac = getattr(trainer, "activation_checkpointing", False) or getattr(
        strategy, "activation_checkpointing", False
    )
    if not isinstance(strategy, FSDPStrategy):
        if wants_ac:
            n = apply_activation_checkpointing(model)
            log.info("activation checkpointing on %d blocks", n)
        return None
    if str(trainer.precision).startswith("16"):
        raise TrainError(
            "strategy='fsdp' supports precision '32-true' and 'bf16-mixed'; '16-mixed' needs a "
            "sharded gradient scaler: use 'bf16-mixed'"
        )
    if trainer.sync_batchnorm:
        raise TrainError("sync_batchnorm=True is not supported with strategy='fsdp'")
    if getattr(model, "_compiled_call_impl", None) is not None:
        # Compile per block instead (torchtitan's order: checkpointing, compile, shard): the
        # root's FSDP hooks then run eagerly between compiled blocks.
        model._compiled_call_impl = None
        for block in blocks_of(model):
            block.compile()
    if wants_ac:
        apply_activation_checkpointing(model)
    n = apply_fsdp(model, trainer, strategy)
    from glmx.trainer.optim import parse_configure_optimizers

    trainer.optimizers, trainer.lr_scheduler_configs = parse_configure_optimizers(
        model.configure_optimizers()
    )
    log.info(
        "FSDP2: %d blocks + root sharded over %d ranks (precision %s, cpu_offload=%s)",
        n,
        dist.get_world_size(),
        trainer.precision,
        strategy.cpu_offload,
    )
    return model.training_step
