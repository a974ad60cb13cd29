"""`Trainer`: Lightning's arguments, public properties and callback dispatch. A run's state and
control flow belong to :class:`glmx.trainer.fit_loop.FitLoop` (``trainer.fit_loop``)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any

import torch

from glmx.errors import TrainError
from glmx.trainer import _distributed, stages
from glmx.trainer.callbacks import Callback
from glmx.trainer.fit_loop import FitLoop
from glmx.trainer.loggers import CSVLogger, JsonLogger, Logger
from glmx.trainer.loggers_ext import TensorBoardLogger  # + hparams, epoch, images
from glmx.trainer.metrics import MetricsCollector
from glmx.trainer.module import DataModule, Module
from glmx.trainer.optim import SchedulerConfig
from glmx.trainer.seed import seed_everything

log = logging.getLogger("glmx.trainer")

_PRECISIONS = {
    "32-true": None,
    "32": None,
    32: None,
    "bf16-mixed": torch.bfloat16,
    "16-mixed": torch.float16,
}


class Trainer:
    """Fits, validates, tests and predicts a :class:`glmx.Module` (Lightning's arguments).

    ``fit`` hands the run to a :class:`~glmx.trainer.fit_loop.FitLoop` (``trainer.fit_loop``),
    which owns its state and stopping rules. ``max_steps=-1`` and ``max_epochs=None`` mean 1000
    epochs, as in Lightning; ``fast_dev_run`` runs that many train/val/test batches with
    checkpointing, loggers, early stopping and job control off.
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
        activation_checkpointing: bool = False,  # T18 (#18): see glmx.distributed
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
                f"precision must be one of {sorted(set(map(str, _PRECISIONS)))}, got {precision!r}"
            )
        if isinstance(fast_dev_run, bool) or fast_dev_run is None:
            fast_dev_run = int(bool(fast_dev_run))
        if not isinstance(fast_dev_run, int) or fast_dev_run < 0:
            raise TrainError(f"fast_dev_run must be a bool or a positive int, got {fast_dev_run!r}")
        self.fast_dev_run = fast_dev_run
        if self.fast_dev_run:  # Lightning's `_init_debugging_flags`
            max_steps, max_epochs, num_sanity_val_steps = self.fast_dev_run, 1, 0
            limit_train_batches = limit_val_batches = limit_test_batches = self.fast_dev_run
            limit_predict_batches, logger, val_check_interval = self.fast_dev_run, False, 1.0
            check_val_every_n_epoch = 1
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
        # Batches of each loader in the last (or current) validation / test, inf when a loader
        # has no length (Lightning's `num_val_batches`, `num_test_batches`)
        self.num_val_batches: list[float] = []
        self.num_test_batches: list[float] = []
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
        # -- strategy hook (T18, #18): "fsdp" / FSDPStrategy, activation checkpointing --
        from glmx.distributed import resolve_strategy, strategy_name

        self.strategy = resolve_strategy(strategy, activation_checkpointing)
        self.activation_checkpointing = activation_checkpointing
        self.dist = _distributed.setup(
            accelerator, devices, strategy_name(self.strategy), num_nodes
        )
        self.device = self.dist.device
        self.callbacks: list[Callback] = (
            list(callbacks)
            if isinstance(callbacks, (list, tuple))
            else ([callbacks] if callbacks is not None else [])
        )
        from glmx.trainer.progress import add_default_callbacks  # bar, run and model summary

        add_default_callbacks(self.callbacks, enable_progress_bar, enable_model_summary)
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
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler_configs: list[SchedulerConfig] = []
        self.lightning_module: Module | None = None
        self.datamodule: DataModule | None = None
        self._metrics_train = MetricsCollector()
        self._metrics_eval = MetricsCollector(
            callback_metrics=self._metrics_train.callback_metrics,
            progress_bar=self._metrics_train.progress_bar,
            computed_at=self._metrics_train.computed_at,
            logged=self._metrics_train.logged,
        )
        # Lightning's `trainer.interrupted`: the last fit ended with an exception
        self.interrupted = False
        self._metrics = self._metrics_train
        self._hook_cache: dict[str, list[Any]] = {}
        self._hook_key: tuple[int, int] | None = None
        self.fit_loop = FitLoop(self)  # the run's state (counters persist across fit calls)

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
    def global_step(self) -> int:
        """Optimizer steps taken."""
        return self.fit_loop.global_step

    @property
    def current_epoch(self) -> int:
        """The current epoch (0-based); after an epoch ends, the number of epochs run."""
        return self.fit_loop.current_epoch

    @property
    def should_stop(self) -> bool:
        """Set it to ``True`` to stop training (honoured once ``min_epochs`` are done)."""
        return self.fit_loop.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.fit_loop.should_stop = bool(value)

    @property
    def sanity_checking(self) -> bool:
        """Whether the pre-training validation sanity check is running."""
        return self.fit_loop.sanity_checking

    @property
    def validated(self) -> bool:
        """Whether a real (not sanity) validation has run in this fit."""
        return self.fit_loop.validated

    @property
    def num_training_batches(self) -> int | None:
        """Training batches per epoch (``None`` for a loader without a length)."""
        return self.fit_loop.max_batches

    @property
    def checkpoint_callbacks(self) -> list[Any]:
        """The ``ModelCheckpoint`` callbacks, in order (Lightning's property)."""
        from glmx.trainer.checkpointing import ModelCheckpoint

        return [c for c in self.callbacks if isinstance(c, ModelCheckpoint)]

    @property
    def checkpoint_callback(self) -> Any:
        """The first ``ModelCheckpoint`` callback, ``None`` when there is none."""
        found = self.checkpoint_callbacks
        return found[0] if found else None

    @property
    def early_stopping_callback(self) -> Any:
        """The first ``EarlyStopping`` callback, ``None`` when there is none."""
        from glmx.trainer.callbacks import EarlyStopping

        return next((c for c in self.callbacks if isinstance(c, EarlyStopping)), None)

    @property
    def estimated_stepping_batches(self) -> int | None:
        """Optimizer steps the whole fit will take, when it can be known."""
        loop = self.fit_loop
        candidates = [self.max_steps] if self.max_steps else []
        if loop.max_batches is not None and self.max_epochs is not None:
            per_epoch = -(-loop.max_batches // self.accumulate_grad_batches)
            candidates.append(per_epoch * self.max_epochs)
        return min(candidates) if candidates else None

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
    def logged_metrics(self) -> dict[str, Any]:
        """Latest value of every metric ``self.log`` sent to loggers (``logger=True``)."""
        return self._metrics_train.logged

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """Metrics logged with ``prog_bar=True`` (plus the training loss)."""
        return {k: float(v) for k, v in self._metrics_train.progress_bar.items()}

    def callback_metrics_float(self, name: str) -> float | None:
        """A monitored metric as float, ``None`` if never logged."""
        return self._metrics_train.metric(name)

    def metrics_computed_now(self) -> dict[str, float]:
        """Callback metrics computed at the current global step (what a checkpoint may be
        ranked by: a value from an earlier validation is never carried forward)."""
        return self._metrics_train.metrics_at(self.global_step)

    def missing_metric_error(self, name: str, who: str) -> TrainError:
        """The error for a monitored metric that was never logged (lists what was)."""
        return self._metrics_train.missing_metric_error(name, who)

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
            if hasattr(batch, "_fields"):  # a namedtuple keeps its type and field names
                return type(batch)(*moved)
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
                        raise self.missing_metric_error(cfg.monitor or "", "ReduceLROnPlateau")
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

    def sync_should_stop(self) -> bool:
        """Under DDP every rank must stop at the same step: stop when any rank wants to."""
        if self.dist.distributed:
            import torch.distributed as dist

            device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
            flag = torch.tensor([int(self.should_stop)], dtype=torch.int64, device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.should_stop = bool(flag.item())
        return self.should_stop

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
        self.fit_loop.run(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path)

    def validate(
        self,
        model: Module | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
    ) -> list[dict[str, float]]:
        """Run one validation epoch; returns ``[metrics]`` (printed when ``verbose``)."""
        return stages.run_eval(self, "validate", model, dataloaders, datamodule, ckpt_path, verbose)

    def test(
        self,
        model: Module | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
    ) -> list[dict[str, float]]:
        """Run one test epoch; returns ``[metrics]`` (printed when ``verbose``)."""
        return stages.run_eval(self, "test", model, dataloaders, datamodule, ckpt_path, verbose)

    def predict(
        self,
        model: Module | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
    ) -> list[Any]:
        """Return ``predict_step`` outputs for every batch."""
        return stages.run_predict(self, model, dataloaders, datamodule, ckpt_path)

    def save_checkpoint(self) -> Path:
        """Save a checkpoint now (through the ModelCheckpoint callback's manager) and wait."""
        from glmx.trainer.checkpointing import ModelCheckpoint, save

        for cb in self.callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.manager is not None:
                path = save(self, cb.manager)
                cb.manager.wait()
                return path
        raise TrainError(
            "save_checkpoint() needs checkpointing: pass enable_checkpointing=True during fit"
        )


from glmx.trainer._trainer_doc import INIT_DOC  # noqa: E402 - argument docs (#21)

Trainer.__init__.__doc__ = INIT_DOC

__all__ = ["Trainer", "seed_everything"]
