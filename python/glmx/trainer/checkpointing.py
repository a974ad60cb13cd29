"""Checkpoints of a training run through :class:`glmx.ckpt.CheckpointManager`, and the
Lightning-style :class:`ModelCheckpoint` callback.

A checkpoint holds the weights plus every component needed for an exact resume: optimizers,
schedulers, trainer counters, the data loader position, RNG states (per rank), callback and
datamodule state. Nothing is pickled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmx.ckpt import CheckpointManager
from glmx.errors import CheckpointError, TrainError
from glmx.trainer._console import write_line
from glmx.trainer.callbacks import Callback

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.trainer")


def training_state(trainer: Trainer) -> dict[str, Any]:
    """Everything except the weights, keyed by component name."""
    module = trainer.lightning_module
    assert module is not None
    loop = trainer.fit_loop
    components: dict[str, Any] = {
        **loop.state_dict(),
        "optimizer": {str(i): opt.state_dict() for i, opt in enumerate(trainer.optimizers)},
        "scheduler": {
            str(i): cfg.scheduler.state_dict() for i, cfg in enumerate(trainer.lr_scheduler_configs)
        },
        "callbacks": {
            f"{type(cb).__name__}.{i}": cb.state_dict() for i, cb in enumerate(trainer.callbacks)
        },
    }
    loader = loop.train_loader
    if loader is not None and hasattr(loader, "state_dict"):
        components["loader"] = loader.state_dict()
    if trainer.datamodule is not None:
        components["datamodule"] = trainer.datamodule.state_dict()
    extra: dict[str, Any] = {}
    module.on_save_checkpoint(extra)
    if extra:
        components["module_extra"] = extra
    return components


def save(trainer: Trainer, manager: CheckpointManager, batch_idx: int | None = None) -> Path:
    """Save the current state at ``trainer.global_step``; returns the checkpoint directory.
    (``batch_idx`` is accepted for older callers and ignored: the fit loop knows where a
    resumed run continues.)

    The manifest records the metrics computed at this step only. A monitored metric that was
    not computed now is recorded as ``null``: such a checkpoint is kept as the newest, never
    ranked as best with a value from an earlier step."""
    module = trainer.lightning_module
    assert module is not None
    loop = trainer.fit_loop
    if loop.running:
        loop.nonfinite.check()  # never keep weights trained past a NaN loss
    sharing = {
        "rng": "PER_RANK",
        "epoch_rng": "PER_RANK",
        "loader_rng": "PER_RANK",
        "loader": "PER_RANK",
    }
    components = training_state(trainer)
    sharing = {k: v for k, v in sharing.items() if k in components}
    metrics: dict[str, Any] = dict(trainer.metrics_computed_now())
    if manager.monitor and manager.monitor not in metrics:
        metrics[manager.monitor] = None
    from glmx.distributed import is_sharded, save_sharded  # T18 (#18): FSDP saves per rank

    if is_sharded(trainer):
        return save_sharded(trainer, manager, components, sharing, metrics)
    return manager.save(
        trainer.global_step, module.state_dict(), components, sharing=sharing, metrics=metrics
    )


def _manager_for(
    trainer: Trainer, ckpt_path: str | os.PathLike[str]
) -> tuple[CheckpointManager, str]:
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.manager is not None:
            if str(ckpt_path) == "best" and not cb.monitor and cb.best_model_path:
                return cb.manager, cb.best_model_path  # no monitor: the latest save (Lightning)
            if str(ckpt_path) in ("last", "best"):
                return cb.manager, str(ckpt_path)
    if str(ckpt_path) in ("last", "best"):
        run_dir = trainer.default_root_dir
        for cb in trainer.callbacks:
            if isinstance(cb, ModelCheckpoint):
                run_dir = Path(cb.dirpath or run_dir)
        return CheckpointManager(
            run_dir, world_size=trainer.world_size, rank=trainer.global_rank
        ), str(ckpt_path)
    path = Path(ckpt_path)
    if not path.exists():
        raise CheckpointError(
            f"ckpt_path '{path}' does not exist; pass 'last', 'best' or a checkpoint directory"
        )
    return CheckpointManager(
        path.resolve().parent.parent, world_size=trainer.world_size, rank=trainer.global_rank
    ), str(path)


def restore(trainer: Trainer, module: Module, ckpt_path: Any, weights_only: bool = False) -> None:
    """Load weights (and, unless ``weights_only``, the full training state) from a checkpoint."""
    manager, which = _manager_for(trainer, ckpt_path)
    from glmx.distributed import load_for  # T18 (#18): sharded checkpoints, other world sizes

    loaded = load_for(trainer, module, manager, which, weights_only)
    try:
        missing, unexpected = module.load_state_dict(loaded["model"], strict=False)
    except RuntimeError as err:  # shape mismatches
        raise CheckpointError(
            f"checkpoint {loaded['path']} does not match {type(module).__name__}: {err}"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {loaded['path']} does not match {type(module).__name__}: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    if trainer.is_global_zero:
        # Lightning's lines: which checkpoint a resumed fit or an evaluation uses
        what = "Loaded model weights from" if weights_only else "Restoring states from"
        write_line(f"{what} the checkpoint at {loaded['path']}")
    if weights_only:
        return
    comps = loaded["components"]
    if comps.get("trainer") is None:
        raise CheckpointError(
            f"checkpoint {loaded['path']} has no trainer state; it cannot resume training"
        )
    for i, opt in enumerate(trainer.optimizers):
        if str(i) in comps.get("optimizer", {}):
            opt.load_state_dict(comps["optimizer"][str(i)])
    for i, cfg in enumerate(trainer.lr_scheduler_configs):
        if str(i) in comps.get("scheduler", {}):
            cfg.scheduler.load_state_dict(comps["scheduler"][str(i)])
    loop = trainer.fit_loop
    loader = loop.train_loader
    loader_restored = False
    if "loader" in comps and loader is not None and hasattr(loader, "load_state_dict"):
        loader.load_state_dict(comps["loader"])
        loader_restored = True  # a loader with state_dict resumes exactly; others replay
    loop.load_state_dict(comps, loader_restored)
    saved_callbacks = comps.get("callbacks", {})
    for i, cb in enumerate(trainer.callbacks):
        key = f"{type(cb).__name__}.{i}"
        if saved_callbacks.get(key):
            cb.load_state_dict(saved_callbacks[key])
    if "datamodule" in comps and trainer.datamodule is not None:
        trainer.datamodule.load_state_dict(comps["datamodule"])
    module.on_load_checkpoint(comps.get("module_extra", {}))
    for lg in trainer.loggers:
        lg.truncate_after(trainer.global_step)
    log.info(
        "resumed from %s at step %d (epoch %d)",
        loaded["path"],
        trainer.global_step,
        trainer.current_epoch,
    )


class ModelCheckpoint(Callback):
    """Save checkpoints every ``every_n_train_steps`` steps and/or every ``every_n_epochs``
    epochs into ``<dirpath or default_root_dir>/checkpoints/checkpoint-<step>/``.

    With ``monitor``, the best ``save_top_k`` by that metric are kept (plus the newest, for
    resuming); without it, the newest ``save_top_k`` (``-1``: all). A checkpoint is ranked only
    by a value computed at its own step.

    As in Lightning, the epoch-based save happens at the end of the training epoch when
    validation runs once per epoch (or not at all), and after each validation otherwise
    (``val_check_interval`` within the epoch, ``check_val_every_n_epoch`` other than 1), so
    every validated step can become the best checkpoint; ``save_on_train_epoch_end`` forces
    one or the other. The final state is always saved when training ends
    (unless ``save_last=False``). Saving is asynchronous: training blocks only while tensors
    are copied.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike[str] | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        mode: str = "min",
        save_top_k: int = 1,
        save_last: bool | None = None,
        every_n_train_steps: int | None = None,
        every_n_epochs: int | None = None,
        async_save: bool = True,
        verbose: bool = False,
        save_on_train_epoch_end: bool | None = None,
    ) -> None:
        if mode not in ("min", "max"):
            raise TrainError(f"ModelCheckpoint mode must be 'min' or 'max', got {mode!r}")
        if save_top_k < -1:
            raise TrainError(f"save_top_k must be >= -1, got {save_top_k}")
        self.dirpath, self.filename, self.monitor, self.mode = dirpath, filename, monitor, mode
        self.save_top_k, self.save_last, self.async_save = save_top_k, save_last, async_save
        self.every_n_train_steps = every_n_train_steps
        self.save_on_train_epoch_end = save_on_train_epoch_end
        self.every_n_epochs = (
            every_n_epochs if every_n_epochs is not None else (0 if every_n_train_steps else 1)
        )
        self.manager: CheckpointManager | None = None
        self.last_saved_step = -1
        self.best_model_path: str = ""
        self.last_model_path: str = ""
        self._warned = False

    def setup(self, trainer: Trainer, pl_module: Module, stage: str) -> None:
        if stage != "fit" or self.manager is not None or trainer.fast_dev_run:
            return  # fast_dev_run never writes checkpoints (Lightning)
        run_dir = Path(self.dirpath) if self.dirpath is not None else trainer.default_root_dir
        if self.monitor:
            keep_best = 0 if self.save_top_k == -1 else self.save_top_k
            limit = None if self.save_top_k == -1 else 1
        else:
            keep_best, limit = 0, (None if self.save_top_k == -1 else max(1, self.save_top_k))
        self.manager = CheckpointManager(
            run_dir,
            save_total_limit=limit,
            keep_best=keep_best,
            monitor=self.monitor,
            mode=self.mode,
            async_save=self.async_save,
            world_size=trainer.world_size,
            rank=trainer.global_rank,
        )

    def _write(self, trainer: Trainer) -> None:
        assert self.manager is not None
        previous = self.last_saved_step
        # recorded before the state is taken, so a resumed run knows this step is saved
        self.last_saved_step = trainer.global_step
        try:
            path = save(trainer, self.manager)
        except BaseException:
            self.last_saved_step = previous
            raise
        self.last_model_path = str(path)
        if not self.monitor and self.save_top_k != 0:
            # Lightning: without a monitor the latest kept checkpoint is the best one
            self.best_model_path = str(path)

    def _monitor_missing(self, trainer: Trainer) -> bool:
        """Whether the monitored metric was not computed at this step. Never logged although
        validation ran: an error naming the key and what was logged (Lightning's rule);
        before the first validation: a warning, once."""
        if not self.monitor or self.monitor in trainer.metrics_computed_now():
            return False
        if self.monitor not in trainer.callback_metrics:
            if trainer.validated:
                raise trainer.missing_metric_error(self.monitor, "ModelCheckpoint")
            if not self._warned:
                self._warned = True
                log.warning(
                    "ModelCheckpoint(monitor=%r): no value yet at step %d (validation has not "
                    "run); saving 'last' only, no best checkpoint",
                    self.monitor,
                    trainer.global_step,
                )
        return True

    def _save_scheduled(self, trainer: Trainer) -> None:
        """A save due by ``every_n_train_steps`` / ``every_n_epochs``: ranked by the monitor
        when it was computed at this step, else kept only as ``last`` (with ``save_last``)."""
        if (
            self.manager is None
            or trainer.global_step == self.last_saved_step
            or trainer.global_step == 0
        ):
            return
        missing = self._monitor_missing(trainer)
        if self.save_top_k == 0 or missing:
            if not self.save_last:
                return
        self._write(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step > 0 and trainer.global_step % n == 0:
            self._save_scheduled(trainer)

    def _saves_on_train_epoch_end(self, trainer: Trainer) -> bool:
        """Lightning's ``_should_save_on_train_epoch_end``."""
        if self.save_on_train_epoch_end is not None:
            return self.save_on_train_epoch_end
        if trainer.check_val_every_n_epoch != 1:
            return False  # validation does not follow the epochs
        if trainer.fit_loop.val_check_batch is None:
            return True  # no validation
        return trainer.val_check_interval == 1.0

    def _save_for_epoch(self, trainer: Trainer) -> None:
        n = self.every_n_epochs
        if n and (trainer.current_epoch + 1) % n == 0:
            self._save_scheduled(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Module) -> None:
        if self._saves_on_train_epoch_end(trainer):
            self._save_for_epoch(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.sanity_checking or not trainer.fit_loop.running:
            return  # Trainer.validate() and the sanity check never save
        if not self._saves_on_train_epoch_end(trainer):
            self._save_for_epoch(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: Module) -> None:
        if self.manager is None:
            return
        if (
            self.save_last is not False
            and trainer.global_step != self.last_saved_step
            and trainer.global_step > 0
        ):
            # A run always ends with its final state on disk (Lightning's last.ckpt), for
            # resuming or evaluating, even when no scheduled save fell on the last step.
            self._monitor_missing(trainer)
            self._write(trainer)
        self.manager.wait()
        if self.monitor:
            try:
                self.best_model_path = str(self.manager.resolve("best"))
            except CheckpointError:
                self.best_model_path = ""

    def state_dict(self) -> dict[str, Any]:
        return {"last_saved_step": self.last_saved_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_saved_step = int(state.get("last_saved_step", -1))
