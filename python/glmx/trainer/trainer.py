"""`Trainer`: Lightning's arguments and methods, with the step loop in Rust (`glmx._glmx.fit_loop`)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glmx import _glmx
from glmx.errors import TrainError
from glmx.trainer import _distributed
from glmx.trainer._loop import END_OF_EPOCH, FitLoopHooks
from glmx.trainer.callbacks import Callback, ProgressBar
from glmx.trainer.loggers import CSVLogger, JsonLogger, Logger, TensorBoardLogger
from glmx.trainer.metrics import MetricsCollector, batch_size_of
from glmx.trainer.module import DataModule, Module
from glmx.trainer.optim import SchedulerConfig

log = logging.getLogger("glmx.trainer")

_PRECISIONS = {
    "32-true": None,
    "32": None,
    32: None,
    "bf16-mixed": torch.bfloat16,
    "16-mixed": torch.float16,
}


def seed_everything(seed: int, workers: bool = False) -> int:
    """Seed Python, numpy and torch (all devices); returns the seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    return seed


class _StepRunner(torch.nn.Module):
    """Routes ``forward`` to ``training_step`` so DDP's gradient hooks see the real step."""

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: Any, batch_idx: int) -> Any:
        return self.module.training_step(batch, batch_idx)


def _limit(value: int | float | None, loader: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or value < 0:
        raise TrainError(
            f"{what} must be a non-negative int or a fraction in [0, 1], got {value!r}"
        )
    if isinstance(value, int) or (isinstance(value, float) and value > 1):
        return int(value)
    if value == 1.0:
        return None
    try:
        return max(1, int(len(loader) * value)) if value > 0 else 0
    except TypeError as exc:
        raise TrainError(f"{what}={value} is a fraction, but the loader has no len()") from exc


class Trainer:
    """Fits, validates, tests and predicts a :class:`glmx.Module` (Lightning's arguments).

    The batch loop (accumulation, backward, gradient clipping, limits, stopping) runs in Rust;
    ``training_step``, optimizers, schedulers, callbacks and loggers are called at step
    boundaries. ``max_steps=-1`` and ``max_epochs=None`` mean 1000 epochs, as in Lightning.
    """

    def __init__(
        self,
        *,
        max_steps: int = -1,
        max_epochs: int | None = None,
        min_epochs: int | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        precision: str | int = "32-true",
        val_check_interval: int | float = 1.0,
        check_val_every_n_epoch: int | None = 1,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        fast_dev_run: bool | int = False,
        overfit_batches: int | float = 0,
        num_sanity_val_steps: int = 2,
        log_every_n_steps: int = 50,
        deterministic: bool = False,
        accelerator: str = "auto",
        devices: int | str | list[int] = "auto",
        strategy: str = "auto",
        num_nodes: int = 1,
        sync_batchnorm: bool = False,
        default_root_dir: str | os.PathLike[str] | None = None,
        callbacks: list[Callback] | Callback | None = None,
        logger: bool | Logger | list[Logger] = True,
        enable_progress_bar: bool = True,
        enable_checkpointing: bool = True,
        enable_job_control: bool = True,
        enable_model_summary: bool = True,
        compile: bool = False,
        detect_nonfinite_loss: bool = True,
        seed: int | None = None,
    ) -> None:
        if precision not in _PRECISIONS:
            raise TrainError(
                f"precision must be one of {sorted(map(str, _PRECISIONS))}, got {precision!r}"
            )
        self.fast_dev_run = int(fast_dev_run)
        if self.fast_dev_run:
            max_steps, max_epochs, num_sanity_val_steps = self.fast_dev_run, 1, 0
            limit_train_batches = limit_val_batches = limit_test_batches = self.fast_dev_run
            limit_predict_batches, logger, val_check_interval = self.fast_dev_run, False, 1.0
        if max_steps == -1 and max_epochs is None:
            max_epochs = 1000
        if max_epochs == -1:
            max_epochs = None  # Lightning: -1 trains until max_steps or a stop
            if max_steps in (-1, None):
                raise TrainError("max_epochs=-1 (no epoch limit) needs max_steps: set max_steps")
        self.max_steps = None if max_steps in (-1, None) else int(max_steps)
        self.max_epochs = max_epochs
        self.min_epochs = min_epochs or 0
        self.sync_batchnorm = sync_batchnorm
        self.accumulate_grad_batches = int(accumulate_grad_batches)
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.precision = precision
        self.val_check_interval = val_check_interval
        self.check_val_every_n_epoch = check_val_every_n_epoch
        self.limit_train_batches, self.limit_val_batches = limit_train_batches, limit_val_batches
        self.limit_test_batches, self.limit_predict_batches = (
            limit_test_batches,
            limit_predict_batches,
        )
        self.overfit_batches = overfit_batches
        self.num_sanity_val_steps = num_sanity_val_steps
        self.log_every_n_steps = max(1, int(log_every_n_steps))
        self.deterministic, self.compile, self.seed = deterministic, compile, seed
        self.detect_nonfinite_loss = detect_nonfinite_loss
        self.enable_checkpointing = enable_checkpointing
        self.default_root_dir = Path(default_root_dir or os.getcwd())
        self.dist = _distributed.setup(accelerator, devices, strategy, num_nodes)
        self.device = self.dist.device
        self.callbacks: list[Callback] = (
            list(callbacks)
            if isinstance(callbacks, (list, tuple))
            else ([callbacks] if callbacks is not None else [])
        )
        if enable_progress_bar and not any(isinstance(c, ProgressBar) for c in self.callbacks):
            self.callbacks.append(ProgressBar())
        if enable_checkpointing and not self.fast_dev_run:
            from glmx.trainer.checkpointing import ModelCheckpoint

            if not any(isinstance(c, ModelCheckpoint) for c in self.callbacks):
                self.callbacks.append(ModelCheckpoint())
        self._add_default_callbacks(enable_job_control)
        if logger is True:
            self.loggers: list[Logger] = [JsonLogger(), CSVLogger(), TensorBoardLogger()]
        elif logger is False or logger is None:
            self.loggers = []
        else:
            self.loggers = list(logger) if isinstance(logger, (list, tuple)) else [logger]
        for lg in self.loggers:
            lg.attach(self.default_root_dir, self.global_rank)
        # run state
        self.global_step = 0
        self.current_epoch = 0
        self.should_stop = False
        self.sanity_checking = False
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler_configs: list[SchedulerConfig] = []
        self.lightning_module: Module | None = None
        self.datamodule: DataModule | None = None
        self.estimated_stepping_batches: int | None = None
        self._metrics_train = MetricsCollector()
        self._metrics_eval = MetricsCollector(
            callback_metrics=self._metrics_train.callback_metrics,
            progress_bar=self._metrics_train.progress_bar,
        )
        self._metrics = self._metrics_train
        self._scaler: Any = None
        self._step_runner: Any = None
        self._last_loss: Any = None
        self._last_grad_norm: float | None = None
        self._val_loaders: list[Any] = []
        self._train_batches: int | None = None
        self._epoch_batches: int | None = None
        self._val_limit: int | None = None
        self._val_every: int | None = None
        self._train_loader: Any = None
        self._loader_restored = False
        self._pending_rng_state: Any = None
        self._hook_cache: dict[str, list[Any]] = {}
        self._hook_key: tuple[int, int] | None = None
        self._pending_epoch_rng_state: Any = None
        self._epoch_rng_state: Any = None
        self._next_batch_idx = 0
        self._validated = False  # a real (not sanity) validation has run in this fit

    def _add_default_callbacks(self, enable_job_control: bool) -> None:
        # `glmx control` reaches every training through this callback (local files only).
        if enable_job_control and not self.fast_dev_run:
            from glmx.trainer.control import JobControl

            if not any(isinstance(c, JobControl) for c in self.callbacks):
                self.callbacks.append(JobControl())
        # Under SLURM, the requeue signal saves a checkpoint and requeues the job.
        if os.environ.get("SLURM_JOB_ID") and self.enable_checkpointing:
            from glmx.cluster import SlurmRequeue

            if not any(isinstance(c, SlurmRequeue) for c in self.callbacks):
                self.callbacks.append(SlurmRequeue())

    # -- properties users and callbacks read -----------------------------------------------
    @property
    def global_rank(self) -> int:
        """Rank of this process (0 when not distributed)."""
        return self.dist.rank

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.dist.world_size

    @property
    def is_global_zero(self) -> bool:
        """Whether this is rank 0."""
        return self.dist.rank == 0

    @property
    def logger(self) -> Logger | None:
        """The first logger (Lightning's ``trainer.logger``)."""
        return self.loggers[0] if self.loggers else None

    @property
    def log_dir(self) -> Path:
        """Where loggers write (the first logger's directory, else ``default_root_dir``)."""
        return self.loggers[0].log_dir if self.loggers else self.default_root_dir

    @property
    def callback_metrics(self) -> dict[str, Any]:
        """Latest value of every logged metric."""
        return self._metrics_train.callback_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """Metrics logged with ``prog_bar=True`` (plus the training loss)."""
        return {k: float(v) for k, v in self._metrics_train.progress_bar.items()}

    def callback_metrics_float(self, name: str) -> float | None:
        """A monitored metric as float, ``None`` if never logged."""
        return self._metrics_train.metric(name)

    def is_log_step(self, step: int | None = None) -> bool:
        """Whether step metrics are written at ``step`` (every ``log_every_n_steps``)."""
        step = self.global_step if step is None else step
        return step % self.log_every_n_steps == 0 or step == 1

    def log_metrics_now(self, values: dict[str, float], step: int | None = None) -> None:
        """Send ``values`` to every logger at ``step`` (default: the current global step)."""
        if not values:
            return
        step = self.global_step if step is None else step
        for lg in self.loggers:
            lg.log_metrics(values, step=step, epoch=self.current_epoch)

    # -- helpers used by the loop ------------------------------------------------------------
    def _error(self, message: str) -> TrainError:
        return TrainError(message)

    def _hooks_for(self, hook: str) -> list[Any]:
        """Callables that implement ``hook`` (callbacks first, then the module); hooks left at
        the base class' no-op are not called at all, which keeps per-step overhead low. The
        table is rebuilt when the callbacks or the module change."""
        key = (len(self.callbacks), id(self.lightning_module))
        if self._hook_key != key:
            self._hook_cache, self._hook_key = {}, key
        found = self._hook_cache.get(hook)
        if found is None:
            module = self.lightning_module
            found = [
                functools.partial(getattr(cb, hook), self, module)
                for cb in self.callbacks
                if getattr(type(cb), hook, None) is not getattr(Callback, hook, None)
            ]
            if module is not None and getattr(type(module), hook, None) is not getattr(
                Module, hook, None
            ):
                found.append(getattr(module, hook))
            self._hook_cache[hook] = found
        return found

    def _call(self, hook: str, *args: Any) -> None:
        for fn in self._hooks_for(hook):
            fn(*args)

    def _call_module(self, hook: str, *args: Any) -> None:
        module = self.lightning_module
        if module is not None and getattr(type(module), hook, None) is not getattr(
            Module, hook, None
        ):
            getattr(module, hook)(*args)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = _PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _to_device(self, batch: Any) -> Any:
        if self.device.type == "cpu":
            return batch  # loaders yield CPU tensors; walking the batch would cost every step
        return self._move(batch)

    def _move(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return (
                batch.to(self.device, non_blocking=True) if batch.device != self.device else batch
            )
        if isinstance(batch, dict):
            return {k: self._move(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            moved = [self._move(v) for v in batch]
            return type(batch)(moved) if isinstance(batch, list) else tuple(moved)
        return batch

    def _step_schedulers(self, interval: str) -> None:
        for cfg in self.lr_scheduler_configs:
            if cfg.interval != interval:
                continue
            count = self.global_step if interval == "step" else self.current_epoch + 1
            if count % cfg.frequency:
                continue
            if isinstance(cfg.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                value = self.callback_metrics_float(cfg.monitor or "")
                if value is None:
                    if cfg.strict:
                        raise self._metrics.missing_metric_error(
                            cfg.monitor or "", "ReduceLROnPlateau"
                        )
                    continue
                cfg.scheduler.step(value)
            else:
                cfg.scheduler.step()

    # -- validation ----------------------------------------------------------------------------
    def _monitoring_callbacks(self) -> list[Callback]:
        """Callbacks that read monitored metrics (checkpointing, early stopping)."""
        from glmx.trainer.callbacks import EarlyStopping
        from glmx.trainer.checkpointing import ModelCheckpoint

        return [c for c in self.callbacks if isinstance(c, (ModelCheckpoint, EarlyStopping))]

    def _agree_to_stop(self) -> bool:
        """Under DDP every rank must stop at the same step: stop when any rank wants to."""
        if self.dist.distributed:
            import torch.distributed as dist

            device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
            flag = torch.tensor([int(self.should_stop)], dtype=torch.int64, device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.should_stop = bool(flag.item())
        return self.should_stop

    def _should_validate_mid_epoch(self, epoch: int, batch_idx: int) -> bool:
        return (
            self._val_every is not None
            and (batch_idx + 1) % self._val_every == 0
            and (self._epoch_batches is None or batch_idx + 1 < self._epoch_batches)
            and self._should_validate_at_epoch_end(epoch)  # same epoch gating and limits
        )

    def _should_validate_at_epoch_end(self, epoch: int) -> bool:
        if not self._val_loaders or self._val_limit == 0:
            return False
        every = self.check_val_every_n_epoch
        return every is not None and (epoch + 1) % every == 0

    def _run_validation(self, max_batches: int | None = None) -> dict[str, float]:
        limit = self._val_limit if max_batches is None else max_batches
        self._validated = self._validated or not self.sanity_checking
        return self._eval_epoch(
            "validation", self._val_loaders, limit, log=not self.sanity_checking
        )

    def _eval_epoch(
        self, stage: str, loaders: list[Any], limit: int | None, log: bool = True
    ) -> dict[str, float]:
        """One pass of ``validation_step`` or ``test_step`` over ``loaders`` with Lightning's
        hooks; returns the epoch metrics (batch-size-weighted means)."""
        module = self.lightning_module
        assert module is not None
        step = module.validation_step if stage == "validation" else module.test_step
        self._metrics = self._metrics_eval
        self._metrics_eval.stage = stage
        was_training = module.training
        module.eval()
        try:
            self._call(f"on_{stage}_start")
            self._call(f"on_{stage}_epoch_start")
            with torch.no_grad():
                for loader in loaders:
                    for batch_idx, batch in enumerate(loader):
                        if limit is not None and batch_idx >= limit:
                            break
                        batch = self._to_device(batch)
                        self._metrics_eval.batch_size = batch_size_of(batch)
                        self._call(f"on_{stage}_batch_start", batch, batch_idx)
                        with self._autocast():
                            outputs = step(batch, batch_idx)
                        self._call(f"on_{stage}_batch_end", outputs, batch, batch_idx)
            self._call(f"on_{stage}_epoch_end")
            values = self._metrics_eval.finish_epoch()
            if log:
                self.log_metrics_now(values)
            self._call(f"on_{stage}_end")
        finally:
            module.train(was_training)
            self._metrics = self._metrics_train
        return values

    # -- public API --------------------------------------------------------------------------
    def fit(
        self,
        model: Module,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Train ``model``; resume from ``ckpt_path`` ("last", "best" or a path) if given."""
        from glmx.trainer import _fit

        _fit.run_fit(self, model, train_dataloaders, val_dataloaders, datamodule, ckpt_path)

    def validate(
        self,
        model: Module | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
    ) -> list[dict[str, float]]:
        """Run one validation epoch; returns ``[metrics]`` (printed when ``verbose``)."""
        from glmx.trainer import _fit

        return _fit.run_eval(self, "validate", model, dataloaders, datamodule, ckpt_path, verbose)

    def test(
        self,
        model: Module | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
    ) -> list[dict[str, float]]:
        """Run one test epoch; returns ``[metrics]`` (printed when ``verbose``)."""
        from glmx.trainer import _fit

        return _fit.run_eval(self, "test", model, dataloaders, datamodule, ckpt_path, verbose)

    def predict(
        self,
        model: Module | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
    ) -> list[Any]:
        """Return ``predict_step`` outputs for every batch."""
        from glmx.trainer import _fit

        return _fit.run_predict(self, model, dataloaders, datamodule, ckpt_path)

    def save_checkpoint(self) -> Path:
        """Save a checkpoint now (through the ModelCheckpoint callback's manager) and wait."""
        from glmx.trainer.checkpointing import ModelCheckpoint, save

        for cb in self.callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.manager is not None:
                path = save(self, cb.manager, self._next_batch_idx)
                cb.manager.wait()
                return path
        raise TrainError(
            "save_checkpoint() needs checkpointing: pass enable_checkpointing=True during fit"
        )

    def _fit_loop(self, hooks: FitLoopHooks, params: Iterable[torch.Tensor]) -> None:
        config = {
            "max_steps": self.max_steps,
            "max_epochs": self.max_epochs,
            "accumulate_grad_batches": self.accumulate_grad_batches,
            "gradient_clip_val": self.gradient_clip_val,
            "gradient_clip_algorithm": self.gradient_clip_algorithm,
            "limit_train_batches": self._train_batches,
            "batches_per_epoch": self._epoch_batches,
            "detect_nonfinite_loss": self.detect_nonfinite_loss,
            "scale_loss": self._scaler is not None,
            "after_backward_hook": bool(self._hooks_for("on_after_backward")),
            "before_optimizer_step_hook": self._scaler is not None
            or bool(self._hooks_for("on_before_optimizer_step")),
        }
        state = (self.global_step, self.current_epoch, self._resume_batch_idx)
        step, epoch, _ = _glmx.fit_loop(hooks, list(params), config, state, END_OF_EPOCH)
        self.global_step = step
        self.current_epoch = min(epoch, self.max_epochs) if self.max_epochs is not None else epoch

    _resume_batch_idx = 0


def _num_batches(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


__all__ = ["Trainer", "seed_everything"]
