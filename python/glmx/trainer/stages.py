"""What `Trainer.fit`, `validate`, `test` and `predict` share: attaching the module and data,
one evaluation epoch with Lightning's hooks, teardown, and the `limit_*_batches` rules."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

from glmx.errors import TrainError
from glmx.trainer.metrics import batch_size_of

if TYPE_CHECKING:
    from glmx.trainer.module import DataModule, Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.trainer")


def as_list(loaders: Any) -> list[Any]:
    """One loader or several, as a list (``None`` entries dropped)."""
    if loaders is None:
        return []
    if isinstance(loaders, (list, tuple)):
        return [x for x in loaders if x is not None]
    return [loaders]


def num_batches(loader: Any) -> int | None:
    """``len(loader)``, ``None`` for an iterable without a length."""
    try:
        return len(loader)
    except TypeError:
        return None


def parse_limit(value: int | float | None, loader: Any, what: str) -> int | None:
    """A ``limit_*_batches`` value as a batch count (``None``: the whole loader)."""
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
    n = num_batches(loader) if loader is not None else 0
    if n is None:
        raise TrainError(f"{what}={value} is a fraction, but the loader has no len()")
    return max(1, int(n * value)) if value > 0 else 0


def attach(
    trainer: Trainer, model: Module | None, datamodule: DataModule | None, stage: str
) -> Module:
    """Connect ``model`` (and ``datamodule``) to ``trainer`` and run the ``setup`` hooks."""
    if model is None:
        model = trainer.lightning_module
    if model is None:
        raise TrainError(f"Trainer.{stage}() needs a model: pass model=...")
    if not hasattr(model, "training_step"):
        raise TrainError(f"{type(model).__name__} is not a glmx.Module (no training_step)")
    model.trainer = trainer
    trainer.lightning_module = model
    if datamodule is not None:
        datamodule.trainer = trainer
        trainer.datamodule = datamodule
        if trainer.global_rank == 0:
            datamodule.prepare_data()
        if trainer.dist.distributed:
            torch.distributed.barrier()
        datamodule.setup(stage)
    model.setup(stage)
    for cb in trainer.callbacks:
        cb.setup(trainer, model, stage)
    model.to(trainer.device)
    return model


def teardown(trainer: Trainer, model: Module, stage: str) -> None:
    """The ``teardown`` hooks, then the loggers are closed."""
    for cb in trainer.callbacks:
        cb.teardown(trainer, model, stage)
    model.teardown(stage)
    if trainer.datamodule is not None:
        trainer.datamodule.teardown(stage)
    for lg in trainer.loggers:
        lg.finalize()


def capture_modes(module: torch.nn.Module) -> dict[str, bool]:
    """The ``training`` flag of every submodule (Lightning's ``_ModuleMode.capture``), so an
    evaluation gives back a submodule the user froze with ``.eval()`` still in eval mode."""
    return {name: mod.training for name, mod in module.named_modules()}


def restore_modes(module: torch.nn.Module, modes: dict[str, bool]) -> None:
    """Put back the flags :func:`capture_modes` recorded (submodules added since: as they are)."""
    for name, mod in module.named_modules():
        if name in modes:
            mod.training = modes[name]


def eval_epoch(
    trainer: Trainer, stage: str, loaders: list[Any], limit: int | None, log_values: bool = True
) -> dict[str, float]:
    """One pass of ``validation_step`` or ``test_step`` over ``loaders`` with Lightning's
    hooks; returns the epoch metrics (batch-size-weighted means)."""
    module = trainer.lightning_module
    assert module is not None
    step = module.validation_step if stage == "validation" else module.test_step
    metrics = trainer._metrics_eval
    trainer._metrics = metrics
    metrics.stage = stage
    metrics.step = trainer.global_step
    modes = capture_modes(module)
    # Lightning's `num_val_batches` / `num_test_batches`: per loader, inf when unknown
    counts = [_eval_batches(loader, limit) for loader in loaders]
    setattr(trainer, "num_val_batches" if stage == "validation" else "num_test_batches", counts)
    module.eval()
    try:
        trainer._call(f"on_{stage}_start")
        trainer._call(f"on_{stage}_epoch_start")
        with torch.no_grad():
            for loader in loaders:
                for batch_idx, batch in enumerate(loader):
                    if limit is not None and batch_idx >= limit:
                        break
                    batch = trainer._to_device(batch)
                    metrics.batch_size = batch_size_of(batch)
                    trainer._call(f"on_{stage}_batch_start", batch, batch_idx)
                    with trainer._autocast():
                        outputs = step(batch, batch_idx)
                    trainer._call(f"on_{stage}_batch_end", outputs, batch, batch_idx)
        trainer._call(f"on_{stage}_epoch_end")
        values = metrics.finish_epoch()
        if log_values:
            trainer.log_metrics_now(values)
        trainer._call(f"on_{stage}_end")
    finally:
        restore_modes(module, modes)
        trainer._metrics = trainer._metrics_train
    return values


def _eval_batches(loader: Any, limit: int | None) -> float:
    n = num_batches(loader)
    counts = [c for c in (n, limit) if c is not None]
    return float(min(counts)) if counts else math.inf


def _restore_weights(trainer: Trainer, model: Module, ckpt_path: Any) -> None:
    if ckpt_path is not None:
        from glmx.trainer import checkpointing

        checkpointing.restore(trainer, model, ckpt_path, weights_only=True)


def run_eval(
    trainer: Trainer,
    stage: str,
    model: Module | None,
    dataloaders: Any,
    datamodule: DataModule | None,
    ckpt_path: Any,
    verbose: bool = False,
) -> list[dict[str, float]]:
    """``Trainer.validate`` / ``Trainer.test``."""
    model = attach(trainer, model, datamodule, stage)
    _restore_weights(trainer, model, ckpt_path)
    loaders = as_list(dataloaders)
    if not loaders and trainer.datamodule is not None:
        loaders = as_list(
            trainer.datamodule.val_dataloader()
            if stage == "validate"
            else trainer.datamodule.test_dataloader()
        )
    if not loaders:
        raise TrainError(
            f"Trainer.{stage}() needs data: pass dataloaders= or a datamodule with loaders"
        )
    try:
        if stage == "validate":
            limit = parse_limit(trainer.limit_val_batches, loaders[0], "limit_val_batches")
            values = eval_epoch(trainer, "validation", loaders, limit)
        else:
            limit = parse_limit(trainer.limit_test_batches, loaders[0], "limit_test_batches")
            values = eval_epoch(trainer, "test", loaders, limit)
    finally:
        teardown(trainer, model, stage)
    if verbose and trainer.is_global_zero:
        _print_results(stage, values)
    return [values]


def _print_results(stage: str, values: dict[str, float]) -> None:
    """Lightning's results table, in plain text."""
    if not values:
        return
    width = max(len(k) for k in values)
    print(f"{stage} results:")
    for name, value in sorted(values.items()):
        print(f"  {name:<{width}}  {value:.6g}")


def run_predict(
    trainer: Trainer,
    model: Module | None,
    dataloaders: Any,
    datamodule: DataModule | None,
    ckpt_path: Any,
) -> list[Any]:
    """``Trainer.predict``."""
    model = attach(trainer, model, datamodule, "predict")
    _restore_weights(trainer, model, ckpt_path)
    loaders = as_list(dataloaders)
    if not loaders and trainer.datamodule is not None:
        loaders = as_list(trainer.datamodule.predict_dataloader())
    if not loaders:
        raise TrainError(
            "Trainer.predict() needs data: pass dataloaders= or a datamodule with predict_dataloader"
        )
    limit = parse_limit(trainer.limit_predict_batches, loaders[0], "limit_predict_batches")
    modes = capture_modes(model)
    model.eval()
    outputs = []
    try:
        with torch.no_grad():
            for loader in loaders:
                for batch_idx, batch in enumerate(loader):
                    if limit is not None and batch_idx >= limit:
                        break
                    with trainer._autocast():
                        outputs.append(model.predict_step(trainer._to_device(batch), batch_idx))
    finally:
        restore_modes(model, modes)
        teardown(trainer, model, "predict")
    return outputs


def merge_module_callbacks(trainer: Trainer, extra: Any) -> list[Any]:
    """Lightning's rule: callbacks from ``configure_callbacks`` replace the trainer's callbacks
    of the same type, and checkpoint callbacks run last. Returns the callbacks added."""
    from glmx.trainer.checkpointing import ModelCheckpoint

    extra = [cb for cb in (extra or []) if cb not in trainer.callbacks]
    if not extra:
        return []
    types = {type(cb) for cb in extra}
    kept = [cb for cb in trainer.callbacks if type(cb) not in types]
    merged = kept + [cb for cb in extra if cb not in kept]
    trainer.callbacks = [c for c in merged if not isinstance(c, ModelCheckpoint)] + [
        c for c in merged if isinstance(c, ModelCheckpoint)
    ]
    return extra


def wait_for_checkpoints(trainer: Trainer) -> None:
    """Let a pending asynchronous save finish (after a failure: report, do not raise)."""
    from glmx.trainer.checkpointing import ModelCheckpoint

    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.manager is not None:
            try:
                cb.manager.wait()
            except Exception as err:  # the original failure is what the user needs to see
                log.warning("pending checkpoint save failed: %s", err)


def val_check_batch(interval: Any, every: int | None, max_batches: int | None) -> float:
    """Training batches between validations (Lightning's ``val_check_batch``): an int
    ``val_check_interval`` as is, a fraction of the epoch's batches, or ``inf`` when a loader
    without a length validates once its data runs out."""
    if isinstance(interval, int) and not isinstance(interval, bool):
        if every is not None and max_batches is not None and interval > max_batches:
            raise TrainError(
                f"val_check_interval={interval} is more than the {max_batches} training "
                "batches of an epoch: lower it, or set check_val_every_n_epoch=None to "
                "count batches across epochs"
            )
        return interval
    if every is None:
        raise TrainError(
            "check_val_every_n_epoch=None counts validation by batches: val_check_interval "
            f"must then be an int, got {interval!r}"
        )
    if max_batches is None:
        if interval != 1.0:
            raise TrainError(
                f"val_check_interval={interval} needs a loader with len(); pass an int instead"
            )
        return math.inf
    return max(1, int(max_batches * interval))
