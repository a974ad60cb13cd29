"""The stages of `Trainer.fit` / `validate` / `test` / `predict` around the Rust loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from glmx.errors import TrainError
from glmx.trainer._loop import FitLoopHooks
from glmx.trainer.optim import parse_configure_optimizers

if TYPE_CHECKING:
    from glmx.trainer.module import DataModule, Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.trainer")


def _as_list(loaders: Any) -> list[Any]:
    if loaders is None:
        return []
    if isinstance(loaders, (list, tuple)):
        return [x for x in loaders if x is not None]
    return [loaders]


def _attach(
    trainer: Trainer, model: Module | None, datamodule: DataModule | None, stage: str
) -> Module:
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


def _teardown(trainer: Trainer, model: Module, stage: str) -> None:
    for cb in trainer.callbacks:
        cb.teardown(trainer, model, stage)
    model.teardown(stage)
    if trainer.datamodule is not None:
        trainer.datamodule.teardown(stage)
    for lg in trainer.loggers:
        lg.finalize()


def _prepare_precision(trainer: Trainer) -> None:
    if trainer.precision == "16-mixed":
        if trainer.device.type != "cuda":
            raise TrainError(
                "precision='16-mixed' needs CUDA; on CPU use 'bf16-mixed' or '32-true'"
            )
        trainer._scaler = torch.amp.GradScaler("cuda")
    if trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def run_fit(
    trainer: Trainer,
    model: Module,
    train_dataloaders: Any,
    val_dataloaders: Any,
    datamodule: DataModule | None,
    ckpt_path: Any,
) -> None:
    if trainer.seed is not None:
        from glmx.trainer.trainer import seed_everything

        seed_everything(trainer.seed)
    model = _attach(trainer, model, datamodule, "fit")
    for cb in _merge_module_callbacks(trainer, model.configure_callbacks()):
        cb.setup(trainer, model, "fit")
    train_loader = train_dataloaders
    if train_loader is None and datamodule is not None:
        train_loader = datamodule.train_dataloader()
    if train_loader is None:
        raise TrainError(
            "Trainer.fit() needs training data: pass train_dataloaders= or datamodule="
        )
    val_loaders = _as_list(val_dataloaders)
    if not val_loaders and datamodule is not None:
        val_loaders = _as_list(datamodule.val_dataloader())
    from glmx.trainer._distributed import shard_loader

    train_loader = shard_loader(train_loader, trainer.dist)
    val_loaders = [shard_loader(v, trainer.dist) for v in val_loaders]
    if trainer.overfit_batches:
        trainer.limit_train_batches = trainer.limit_val_batches = trainer.overfit_batches
        val_loaders = [train_loader]
    trainer._val_loaders = val_loaders
    trainer._train_loader = train_loader
    from glmx.trainer.trainer import _limit, _num_batches

    trainer._train_batches = _limit(
        trainer.limit_train_batches, train_loader, "limit_train_batches"
    )
    trainer._val_limit = _limit(
        trainer.limit_val_batches, val_loaders[0] if val_loaders else None, "limit_val_batches"
    )
    epoch_batches = trainer._train_batches
    n = _num_batches(train_loader)
    if n is not None:
        epoch_batches = n if epoch_batches is None else min(n, epoch_batches)
    trainer._epoch_batches = epoch_batches
    interval = trainer.val_check_interval
    if isinstance(interval, float) and interval < 1.0:
        if epoch_batches is None:
            raise TrainError(
                "val_check_interval < 1.0 needs a loader with len(); pass an int instead"
            )
        trainer._val_every = max(1, int(epoch_batches * interval))
    elif isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1:
        trainer._val_every = interval
    steps_per_epoch = (
        None if epoch_batches is None else -(-epoch_batches // trainer.accumulate_grad_batches)
    )
    candidates = [trainer.max_steps] if trainer.max_steps else []
    if steps_per_epoch is not None and trainer.max_epochs is not None:
        candidates.append(steps_per_epoch * trainer.max_epochs)
    trainer.estimated_stepping_batches = min(candidates) if candidates else None

    trainer.optimizers, trainer.lr_scheduler_configs = parse_configure_optimizers(
        model.configure_optimizers()
    )
    _prepare_precision(trainer)
    if trainer.compile:
        # Compiles `model(...)` in place: `training_step` calling `self(x)` runs the compiled
        # forward, while state_dict keys and checkpoints stay those of the plain module.
        model.compile()
    if trainer.dist.distributed:
        from torch.nn.parallel import DistributedDataParallel

        from glmx.trainer.trainer import _StepRunner

        if trainer.sync_batchnorm:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        trainer._step_runner = DistributedDataParallel(
            _StepRunner(model),
            device_ids=[trainer.device.index] if trainer.device.type == "cuda" else None,
        )
    else:
        trainer._step_runner = model.training_step
    if ckpt_path is not None:
        from glmx.trainer import checkpointing

        checkpointing.restore(trainer, model, ckpt_path, train_loader)
    if trainer.num_sanity_val_steps and val_loaders and trainer._val_limit != 0:
        trainer.sanity_checking = True
        try:
            trainer._run_validation(max_batches=trainer.num_sanity_val_steps)
        finally:
            trainer.sanity_checking = False
            # sanity values must not be monitored as if they were a real validation
            trainer._metrics_train.callback_metrics.clear()
            trainer._metrics_train.progress_bar.clear()
    model.train()
    trainer._call("on_fit_start")
    trainer._call("on_train_start")
    params = [p for p in model.parameters() if p.requires_grad]
    skip = 0 if trainer._loader_restored else trainer._resume_batch_idx
    hooks = FitLoopHooks(trainer, train_loader, skip_batches=skip)
    try:
        trainer._fit_loop(hooks, params)
        trainer._call("on_train_end")
        trainer._call("on_fit_end")
    except BaseException as err:
        # Keep what is on disk consistent (pending async checkpoint, open event files) and
        # report the failure to callbacks (Lightning's `on_exception`), then re-raise.
        _wait_for_checkpoints(trainer)
        trainer._call("on_exception", err)
        raise
    finally:
        trainer._resume_batch_idx = 0
        _teardown(trainer, model, "fit")


def _merge_module_callbacks(trainer: Trainer, extra: Any) -> list[Any]:
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


def _wait_for_checkpoints(trainer: Trainer) -> None:
    from glmx.trainer.checkpointing import ModelCheckpoint

    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.manager is not None:
            try:
                cb.manager.wait()
            except Exception as err:  # the original failure is what the user needs to see
                log.warning("pending checkpoint save failed: %s", err)


def run_eval(
    trainer: Trainer,
    stage: str,
    model: Module | None,
    dataloaders: Any,
    datamodule: DataModule | None,
    ckpt_path: Any,
    verbose: bool = False,
) -> list[dict[str, float]]:
    from glmx.trainer.trainer import _limit

    model = _attach(trainer, model, datamodule, stage)
    if ckpt_path is not None:
        from glmx.trainer import checkpointing

        checkpointing.restore(trainer, model, ckpt_path, None, weights_only=True)
    loaders = _as_list(dataloaders)
    if not loaders and trainer.datamodule is not None:
        loaders = _as_list(
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
            trainer._val_loaders = loaders
            trainer._val_limit = _limit(trainer.limit_val_batches, loaders[0], "limit_val_batches")
            values = trainer._run_validation()
        else:
            limit = _limit(trainer.limit_test_batches, loaders[0], "limit_test_batches")
            values = trainer._eval_epoch("test", loaders, limit)
    finally:
        _teardown(trainer, model, stage)
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
    from glmx.trainer.trainer import _limit

    model = _attach(trainer, model, datamodule, "predict")
    if ckpt_path is not None:
        from glmx.trainer import checkpointing

        checkpointing.restore(trainer, model, ckpt_path, None, weights_only=True)
    loaders = _as_list(dataloaders)
    if not loaders and trainer.datamodule is not None:
        loaders = _as_list(trainer.datamodule.predict_dataloader())
    if not loaders:
        raise TrainError(
            "Trainer.predict() needs data: pass dataloaders= or a datamodule with predict_dataloader"
        )
    limit = _limit(trainer.limit_predict_batches, loaders[0], "limit_predict_batches")
    model.eval()
    outputs = []
    with torch.no_grad():
        for loader in loaders:
            for batch_idx, batch in enumerate(loader):
                if limit is not None and batch_idx >= limit:
                    break
                with trainer._autocast():
                    outputs.append(model.predict_step(trainer._to_device(batch), batch_idx))
    _teardown(trainer, model, "predict")
    return outputs
