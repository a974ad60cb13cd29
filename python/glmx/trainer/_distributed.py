"""Device and process-group setup: CPU, one GPU, or DDP (torchrun, `glmx train -d`, SLURM)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from glmx.errors import TrainError


@dataclass
class DistInfo:
    """Where this process runs and which rank it is."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        """Whether a process group with more than one process is in use."""
        return self.world_size > 1


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


def _from_slurm() -> None:
    # srun with one task per GPU: translate SLURM's variables into torch.distributed's.
    if "RANK" in os.environ or "SLURM_PROCID" not in os.environ:
        return
    ntasks = _env_int("SLURM_NTASKS")
    if not ntasks or ntasks < 2:
        return
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = str(ntasks)
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")


def setup(
    accelerator: str, devices: int | str | list[int], strategy: str, num_nodes: int
) -> DistInfo:
    """Pick the device and, when launched with several processes, join the process group."""
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise TrainError(f"accelerator must be 'auto', 'cpu', 'gpu' or 'cuda', got {accelerator!r}")
    if strategy not in ("auto", "ddp", "ddp_spawn", "single_device", "fsdp"):  # fsdp: T18
        raise TrainError(
            f"strategy must be 'auto', 'ddp', 'fsdp' or 'single_device', got {strategy!r}"
        )
    use_cuda = accelerator in ("gpu", "cuda") or (
        accelerator == "auto" and torch.cuda.is_available()
    )
    if use_cuda and not torch.cuda.is_available():
        raise TrainError(
            f"accelerator={accelerator!r} but CUDA is not available; use accelerator='cpu'"
        )
    _from_slurm()
    world = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    local_rank = _env_int("LOCAL_RANK") or 0
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return DistInfo(device=device, rank=rank, local_rank=local_rank, world_size=world)


def shard_loader(loader: Any, info: DistInfo) -> Any:
    """Give each rank its share of a torch ``DataLoader`` (Lightning's
    ``use_distributed_sampler``): the sampler becomes a ``DistributedSampler`` that keeps the
    loader's shuffling. Other iterables (e.g. ``glmx.data.DnaMlmLoader``) shard themselves."""
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    if not info.distributed or not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, DistributedSampler) or loader.batch_sampler is None:
        return loader
    sampler = DistributedSampler(
        loader.dataset,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=isinstance(loader.sampler, RandomSampler),
        drop_last=loader.drop_last,
    )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        persistent_workers=loader.persistent_workers,
    )


class _StepRunner(torch.nn.Module):
    """Routes ``forward`` to ``training_step`` so DDP's gradient hooks see the real step."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: Any, batch_idx: int) -> Any:
        return self.module.training_step(batch, batch_idx)


def wrap_for_training(trainer: Any, model: Any) -> Any:
    """What the fit loop calls as ``training_step(batch, batch_idx)`` under the trainer's
    strategy. The one place where a strategy wraps the model: single device runs the module's
    own ``training_step``; DDP wraps it so gradients are all-reduced."""
    # -- strategy hook (T18, #18): FSDP2 and activation checkpointing, see glmx.distributed --
    from glmx.distributed import prepare_model

    runner = prepare_model(trainer, model)
    if runner is not None:
        return runner
    info = trainer.dist
    if not info.distributed:
        return model.training_step
    from torch.nn.parallel import DistributedDataParallel

    if trainer.sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(
        _StepRunner(model),
        device_ids=[trainer.device.index] if trainer.device.type == "cuda" else None,
    )
