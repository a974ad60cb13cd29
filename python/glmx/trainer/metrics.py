"""Collects what ``Module.log`` records: step values, batch-size-weighted epoch means, and the
``callback_metrics`` that callbacks (checkpointing, early stopping) monitor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from glmx.errors import TrainError

_STEP_DEFAULTS = {"train": (True, False)}  # (on_step, on_epoch) for training_step


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TrainError(
                f"self.log('{name}', ...) needs a scalar, got shape {tuple(value.shape)}"
            )
        return value.detach().reshape(())
    if isinstance(value, (int, float, bool)):
        return torch.tensor(float(value))
    raise TrainError(
        f"self.log('{name}', ...) needs a number or scalar tensor, got {type(value).__name__}"
    )


def batch_size_of(batch: Any) -> int | None:
    """First dimension of the first tensor found in ``batch`` (Lightning's inference)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            size = batch_size_of(item)
            if size is not None:
                return size
    return None


def _for_collective(t: torch.Tensor) -> torch.Tensor:
    """NCCL reduces only CUDA tensors; gloo takes CPU ones."""
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        return t.to(torch.device("cuda", torch.cuda.current_device()))
    return t


def _to_float(value: torch.Tensor | float) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


@dataclass
class _EpochAccumulator:
    total: torch.Tensor
    weight: float
    reduce_fx: str
    sync_dist: bool

    def add(self, value: torch.Tensor, weight: float) -> None:
        if self.reduce_fx == "max":
            self.total = torch.maximum(self.total, value)
        elif self.reduce_fx == "min":
            self.total = torch.minimum(self.total, value)
        elif self.reduce_fx == "sum":
            self.total = self.total + value
        else:
            self.total = self.total + value * weight
        self.weight += weight

    def compute(self) -> float:
        total = self.total.double()
        weight = torch.tensor(self.weight, dtype=torch.float64, device=total.device)
        if self.sync_dist and dist.is_available() and dist.is_initialized():
            stacked = _for_collective(torch.stack([total, weight]))
            op = {"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}.get(self.reduce_fx)
            if op is None:
                dist.all_reduce(stacked)
            else:
                dist.all_reduce(stacked[:1], op=op)
            total, weight = stacked[0], stacked[1]
        if self.reduce_fx in ("max", "min", "sum"):
            return float(total)
        return float(total / weight) if float(weight) > 0 else float("nan")


@dataclass
class MetricsCollector:
    """Where ``self.log`` values go during one trainer stage."""

    stage: str = "train"
    batch_size: int | None = None
    batch: Any = None
    # the global step the values logged now belong to (set by the fit loop)
    step: int = 0
    step_values: dict[str, torch.Tensor] = field(default_factory=dict)
    progress_bar: dict[str, torch.Tensor | float] = field(default_factory=dict)
    callback_metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)
    # name -> the global step its callback value was computed at (never carried forward)
    computed_at: dict[str, int] = field(default_factory=dict)
    # what `self.log(..., logger=True)` sent to loggers, latest value per name (Lightning's
    # `trainer.logged_metrics`)
    logged: dict[str, float | torch.Tensor] = field(default_factory=dict)
    # epoch names logged with logger=False: callback metrics only, never sent to loggers
    _not_logged: set[str] = field(default_factory=set)
    _epoch: dict[str, _EpochAccumulator] = field(default_factory=dict)
    _prog_bar_names: set[str] = field(default_factory=set)
    # `<name>_epoch` -> `<name>` for values logged with on_step and on_epoch: Lightning keeps
    # the bare name in callback_metrics too (the step value, then the epoch value), loggers
    # receive only the suffixed names
    _forked: dict[str, str] = field(default_factory=dict)

    def log(
        self,
        name: str,
        value: Any,
        *,
        prog_bar: bool,
        logger: bool,
        on_step: bool | None,
        on_epoch: bool | None,
        reduce_fx: str,
        sync_dist: bool,
        batch_size: int | None,
    ) -> None:
        default_step, default_epoch = _STEP_DEFAULTS.get(self.stage, (False, True))
        on_step = default_step if on_step is None else on_step
        on_epoch = default_epoch if on_epoch is None else on_epoch
        tensor = _as_tensor(value, name)
        if sync_dist and on_step and dist.is_available() and dist.is_initialized():
            tensor = _for_collective(tensor.clone())
            dist.all_reduce(tensor)
            tensor /= dist.get_world_size()
        step_name = f"{name}_step" if on_step and on_epoch else name
        epoch_name = f"{name}_epoch" if on_step and on_epoch else name
        if on_step and on_epoch:
            self._forked[epoch_name] = name
        if on_step:
            if logger:
                self.step_values[step_name] = tensor
                self.logged[step_name] = tensor
            self.callback_metrics[step_name] = tensor
            self.computed_at[step_name] = self.step
            if on_epoch:
                self.callback_metrics[name] = tensor
                self.computed_at[name] = self.step
            if prog_bar:
                self.progress_bar[step_name] = tensor
        if on_epoch:
            weight = float(batch_size or self.batch_size or batch_size_of(self.batch) or 1)
            acc = self._epoch.get(epoch_name)
            if acc is None:
                init = tensor * weight if reduce_fx == "mean" else tensor
                self._epoch[epoch_name] = _EpochAccumulator(
                    init.double(), weight, reduce_fx, sync_dist
                )
            else:
                acc.add(tensor.double(), weight)
            if prog_bar:
                self._prog_bar_names.add(epoch_name)
            if not logger:
                self._not_logged.add(epoch_name)
        if not logger:
            self.step_values.pop(step_name, None)

    def take_step_values(self) -> dict[str, float]:
        """The step metrics logged since the last call, as floats."""
        values = {k: _to_float(v) for k, v in self.step_values.items()}
        self.step_values.clear()
        return values

    def finish_epoch(self) -> dict[str, float]:
        """Reduce the epoch accumulators; the results become callback metrics. Returns the
        ones logged with ``logger=True`` (what loggers receive)."""
        values = {name: acc.compute() for name, acc in self._epoch.items()}
        self._epoch.clear()
        not_logged, self._not_logged = self._not_logged, set()
        self.callback_metrics.update(values)
        for name in values:
            self.computed_at[name] = self.step
            bare = self._forked.get(name)
            if bare is not None:
                self.callback_metrics[bare] = values[name]
                self.computed_at[bare] = self.step
                if not self.stage.startswith("train"):
                    # as Lightning: an evaluation's step values end with its epoch
                    self.callback_metrics.pop(f"{bare}_step", None)
                    self.computed_at.pop(f"{bare}_step", None)
        for name in self._prog_bar_names & set(values):
            self.progress_bar[name] = values[name]
        to_log = {k: v for k, v in values.items() if k not in not_logged}
        self.logged.update(to_log)
        return to_log

    def clear(self) -> None:
        """Forget every callback and progress-bar value (after the sanity check)."""
        self.callback_metrics.clear()
        self.progress_bar.clear()
        self.computed_at.clear()
        self.logged.clear()

    def metrics_at(self, step: int) -> dict[str, float]:
        """Callback metrics computed at ``step``, as floats."""
        return {
            name: _to_float(value)
            for name, value in self.callback_metrics.items()
            if self.computed_at.get(name) == step
        }

    def metric(self, name: str) -> float | None:
        """Current value of a monitored metric, or ``None`` when it was never logged."""
        value = self.callback_metrics.get(name)
        return None if value is None else _to_float(value)

    def missing_metric_error(self, name: str, who: str) -> TrainError:
        """The error for a monitored metric that was never logged: lists what was."""
        logged = ", ".join(sorted(self.callback_metrics)) or "(nothing logged yet)"
        return TrainError(
            f"{who} monitors '{name}', which was not logged; logged metrics: {logged}. "
            "Log it with self.log(...) or change monitor="
        )
