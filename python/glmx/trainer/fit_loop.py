"""`FitLoop`: the one owner of a `Trainer.fit` run.

It holds the run's state (steps, epochs, the data position, the stop flag, the validation
schedule, the RNG and sampler states a mid-epoch resume needs) and every stopping rule, and
runs the loop in Python, as Lightning's loops do: the long native parts of a step (forward,
backward, the optimizer) are torch calls that release the GIL themselves. Callbacks and
checkpointing read this state through the Trainer's public properties and
:meth:`FitLoop.state_dict`.

Validation follows Lightning 2.x exactly: after each training batch it runs when the epoch is
due (``check_val_every_n_epoch``, or every epoch when it is ``None``) and either the batch
count reaches ``val_check_interval`` (counted within the epoch, or across epochs when
``check_val_every_n_epoch`` is ``None``), or the loader has no length and the epoch's data just
ran out, or a stop was requested and may be honoured.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from glmx.ckpt._rng import rng_state
from glmx.errors import TrainError
from glmx.trainer import stages
from glmx.trainer._data_state import loader_generators, tokens_of
from glmx.trainer._nonfinite import NonfiniteWatch
from glmx.trainer._resume import ResumePoint, loop_state
from glmx.trainer.metrics import batch_size_of
from glmx.trainer.optim import parse_configure_optimizers

if TYPE_CHECKING:
    from glmx.trainer.module import DataModule, Module
    from glmx.trainer.trainer import Trainer


class FitLoop:
    """State and control flow of one ``Trainer.fit`` (``trainer.fit_loop``)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.global_step = 0
        self.current_epoch = 0  # Lightning's counter: +1 after every epoch end, even a cut one
        self.epoch = 0  # the epoch whose data is being read
        self.batch_idx = 0  # next batch of that epoch
        self.total_batch_idx = 0  # batches run in this fit, across epochs
        self.epoch_exhausted = False
        self.done_through = "epoch"  # how much of the last batch's work is done (_resume.PHASES)
        self.should_stop = False
        self.sanity_checking = False
        self.running = False  # inside Trainer.fit (validation in it may save checkpoints)
        self.validated = False  # a real (not sanity) validation has run in this fit
        self.train_loader: Any = None
        self.val_loaders: list[Any] = []
        self.max_batches: int | None = None  # train batches per epoch, when known
        self.val_limit: int | None = None
        self.val_check_batch: float | None = None  # None: no validation
        self.scaler: Any = None
        self.step_runner: Any = None
        self.last_loss: torch.Tensor | None = None
        self.last_grad_norm: float | None = None
        self._grad_norm: torch.Tensor | None = None
        self._pending = 0  # batches accumulated since the last optimizer step
        self._resume: ResumePoint | None = None
        # the RNG and generator states the current epoch's order was drawn from
        self.epoch_start: dict[str, Any] = {}
        self._window = (time.perf_counter(), 0, 0, 0)  # start, steps, batches, tokens
        self._on_batch_start: list[Any] = []
        self._on_batch_end: list[Any] = []
        self._on_after_backward: list[Any] = []
        self._on_before_optimizer_step: list[Any] = []
        self._module_hooks: dict[str, Any] = {}
        self._amp = False
        self.nonfinite = NonfiniteWatch()

    # -- limits and stopping rules -------------------------------------------------------------
    @property
    def max_steps_reached(self) -> bool:
        """Whether ``max_steps`` optimizer steps were taken."""
        max_steps = self.trainer.max_steps
        return max_steps is not None and self.global_step >= max_steps

    def can_stop_early(self, finished_epochs: int | None = None) -> bool:
        """A requested stop waits until ``min_epochs`` epochs are done (Lightning's rule)."""
        done = self.epoch if finished_epochs is None else finished_epochs
        return done >= self.trainer.min_epochs

    def done(self) -> bool:
        """Whether training is over (checked before each epoch)."""
        max_epochs = self.trainer.max_epochs
        return (
            self.max_steps_reached
            or (max_epochs is not None and self.epoch >= max_epochs)
            or (self.should_stop and self.can_stop_early())
        )

    def position(self) -> tuple[int, int]:
        """``(epoch, batch_idx)`` a resumed run continues from.

        A checkpoint taken at the last batch before the epoch end ran (``on_train_batch_end``,
        ``on_validation_end``) resumes at the end of that epoch and runs what was left, so the
        resumed run validates, steps epoch schedulers and draws the next epoch's order exactly
        as the uninterrupted one does.
        """
        if self.epoch_exhausted and self.done_through == "epoch":
            return (self.epoch + 1, 0)
        return (self.epoch, self.batch_idx)

    # -- set-up --------------------------------------------------------------------------------
    def setup_data(self, train_loader: Any, val_loaders: list[Any]) -> None:
        """Batch counts and the validation schedule (Lightning's ``setup_data``)."""
        t = self.trainer
        self.train_loader, self.val_loaders = train_loader, val_loaders
        limit = stages.parse_limit(t.limit_train_batches, train_loader, "limit_train_batches")
        n = stages.num_batches(train_loader)
        self.max_batches = limit if n is None else (n if limit is None else min(n, limit))
        first_val = val_loaders[0] if val_loaders else None
        self.val_limit = stages.parse_limit(t.limit_val_batches, first_val, "limit_val_batches")
        module = t.lightning_module
        has_step = module is not None and _overrides(module, "validation_step")
        self.val_check_batch = None
        if not (val_loaders and has_step and self.val_limit != 0):
            return
        self.val_check_batch = stages.val_check_batch(
            t.val_check_interval, t.check_val_every_n_epoch, self.max_batches
        )

    def run(
        self,
        model: Module,
        train_dataloaders: Any,
        val_dataloaders: Any,
        datamodule: DataModule | None,
        ckpt_path: Any,
    ) -> None:
        """Everything ``Trainer.fit`` does, in Lightning's order."""
        t = self.trainer
        self.should_stop = self.validated = self.epoch_exhausted = False
        self._pending, self._resume, self.done_through = 0, None, "epoch"
        self.nonfinite.clear()
        if t.seed is not None:
            from glmx.trainer.seed import seed_everything

            seed_everything(t.seed)
        model = stages.attach(t, model, datamodule, "fit")
        for cb in stages.merge_module_callbacks(t, model.configure_callbacks()):
            cb.setup(t, model, "fit")
        train_loader = train_dataloaders
        if train_loader is None and datamodule is not None:
            train_loader = datamodule.train_dataloader()
        if train_loader is None:
            raise TrainError(
                "Trainer.fit() needs training data: pass train_dataloaders= or datamodule="
            )
        val_loaders = stages.as_list(val_dataloaders)
        if not val_loaders and datamodule is not None:
            val_loaders = stages.as_list(datamodule.val_dataloader())
        from glmx.trainer._distributed import shard_loader

        train_loader = shard_loader(train_loader, t.dist)
        val_loaders = [shard_loader(v, t.dist) for v in val_loaders]
        if t.overfit_batches:
            t.limit_train_batches = t.limit_val_batches = t.overfit_batches
            val_loaders = [train_loader]
        self.setup_data(train_loader, val_loaders)
        t.optimizers, t.lr_scheduler_configs = parse_configure_optimizers(
            model.configure_optimizers()
        )
        self._prepare_precision()
        if t.compile:
            # `training_step` calling `self(x)` runs the compiled forward; state_dict keys and
            # checkpoints stay those of the plain module.
            model.compile()
        from glmx.trainer._distributed import wrap_for_training

        self.step_runner = wrap_for_training(t, model)
        if ckpt_path is not None:
            from glmx.trainer import checkpointing

            checkpointing.restore(t, model, ckpt_path)
        self.running = True
        t.interrupted = False
        try:
            t._call("on_fit_start")
            self._sanity_check()
            # no model.train() here: as Lightning, training runs in the modes the user left
            # (a frozen BatchNorm stays in eval mode); evaluations restore every submodule's
            # flag afterwards
            t._call("on_train_start")
            while not self.done():
                self._run_epoch()
            self.nonfinite.check()
            t._call("on_train_end")
            t._call("on_fit_end")
        except BaseException as err:
            # Keep what is on disk consistent (pending async checkpoint, open event files) and
            # report the failure to callbacks (Lightning's `on_exception`), then re-raise.
            t.interrupted = True
            stages.wait_for_checkpoints(t)
            t._call("on_exception", err)
            raise
        finally:
            self.running = False
            stages.teardown(t, model, "fit")

    def _prepare_precision(self) -> None:
        t = self.trainer
        if t.precision == "16-mixed":
            if t.device.type != "cuda":
                raise TrainError(
                    "precision='16-mixed' needs CUDA; on CPU use 'bf16-mixed' or '32-true'"
                )
            self.scaler = torch.amp.GradScaler("cuda")
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

    def _sanity_check(self) -> None:
        t = self.trainer
        steps = t.num_sanity_val_steps
        if not steps or self.val_check_batch is None:
            return
        limit = self.val_limit if steps < 0 else min(steps, self.val_limit or steps)
        self.sanity_checking = True
        try:
            stages.eval_epoch(t, "validation", self.val_loaders, limit, log_values=False)
        finally:
            self.sanity_checking = False
            # sanity values must not be monitored as if they were a real validation
            t._metrics_train.clear()

    # -- the loop ------------------------------------------------------------------------------
    def _start_epoch(self) -> Any:
        t = self.trainer
        loader = self.train_loader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(self.epoch)
        elif hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(self.epoch)
        resume, self._resume = self._resume, None
        skip = resume.rewind(loader) if resume is not None else 0
        # Creating a torch DataLoader iterator draws its shuffle order (and worker seeds) from
        # these generators: their state now is what a mid-epoch checkpoint must restore.
        self.epoch_start = {
            "rng": rng_state(),
            "generators": [g.get_state() for g in loader_generators(loader)],
        }
        iterator = iter(loader)
        for _ in range(skip):
            next(iterator, None)
        self.epoch_exhausted = False
        if resume is not None:
            resume.arrive(self)
        self.current_epoch = self.epoch
        t._metrics_train.stage = "train_epoch"
        t._call("on_train_epoch_start")
        self._bind_hooks()
        return iterator

    def _bind_hooks(self) -> None:
        """The per-batch hooks, looked up once per epoch (hooks left at the base class' no-op
        are not called at all: per-step overhead stays small)."""
        t = self.trainer
        module = t.lightning_module
        self._on_batch_start = t._hooks_for("on_train_batch_start")
        self._on_batch_end = t._hooks_for("on_train_batch_end")
        self._on_after_backward = t._hooks_for("on_after_backward")
        self._on_before_optimizer_step = t._hooks_for("on_before_optimizer_step")
        self._module_hooks = {
            name: getattr(module, name)
            for name in ("on_before_backward", "on_before_zero_grad")
            if module is not None and _overrides(module, name)
        }
        self._amp = t.precision not in ("32-true", "32", 32)

    def _run_epoch(self) -> None:
        t = self.trainer
        iterator = self._start_epoch()
        if self.done_through == "batch":
            # resumed from a checkpoint taken in `on_train_batch_end`: finish that batch
            self._after_batch_hooks(self.epoch_exhausted)
        max_batches = self.max_batches
        while not (self.should_stop and self.can_stop_early()):
            if max_batches is not None and self.batch_idx >= max_batches:
                self.epoch_exhausted = True
                break
            try:
                batch = next(iterator)
            except StopIteration:
                self.epoch_exhausted = True
                break
            self._run_batch(batch)
            if self.max_steps_reached:
                break
        if self.epoch_exhausted and self._pending:
            self._optimizer_step()  # an accumulation window cut by the end of the data
        if self.epoch_exhausted and self.val_check_batch == math.inf and self._epoch_due():
            self.validate()  # a loader without len(): the last batch is known only now
        self._end_epoch()
        t.sync_should_stop()

    def _run_batch(self, batch: Any) -> None:
        t = self.trainer
        batch_idx = self.batch_idx
        batch = t._to_device(batch)
        metrics = t._metrics_train
        metrics.stage = "train"
        metrics.batch = batch  # its size is read only if something is logged per epoch
        metrics.step = self.global_step + 1
        start, steps, batches, tokens = self._window
        self._window = (start, steps, batches + 1, tokens + tokens_of(batch))
        for fn in self._on_batch_start:
            fn(batch, batch_idx)
        if self._amp:
            with t._autocast():
                out = self.step_runner(batch, batch_idx)
        else:
            out = self.step_runner(batch, batch_idx)
        loss = out.get("loss") if isinstance(out, dict) else out
        if loss is not None:
            self._backward(loss)
        self.batch_idx = batch_idx + 1
        self.total_batch_idx += 1
        is_last = self.max_batches is not None and self.batch_idx >= self.max_batches
        accumulate = t.accumulate_grad_batches
        stepped = bool(self._pending) and (self._pending >= accumulate or is_last)
        if stepped:
            self._optimizer_step()
        if is_last:
            self.epoch_exhausted = True
        metrics.step = self.global_step
        self.done_through = "batch"
        if self._on_batch_end:
            outputs = _batch_end_outputs(out, loss)
            for fn in self._on_batch_end:
                fn(outputs, batch, batch_idx)
        if stepped and t.is_log_step(self.global_step):
            self._log_step(batch)
        self._after_batch_hooks(is_last)

    def _after_batch_hooks(self, is_last: bool) -> None:
        if self.val_check_batch is not None and self._should_validate(is_last):
            self.validate()
        self.done_through = "validation"

    def _backward(self, loss: Any) -> None:
        t = self.trainer
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TrainError(
                "training_step must return a scalar loss tensor, a dict with 'loss', or None; "
                f"got {type(loss).__name__} at step {self.global_step}"
            )
        hook = self._module_hooks.get("on_before_backward")
        if hook is not None:
            hook(loss)
        detached = loss.detach()
        if t.detect_nonfinite_loss:
            self.nonfinite.add(detached, self.global_step, self.epoch, self.batch_idx)
        accumulate = t.accumulate_grad_batches
        scaled = loss / accumulate if accumulate > 1 else loss
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()
        for fn in self._on_after_backward:
            fn()
        self._pending += 1
        self.last_loss = detached
        t._metrics_train.progress_bar["loss"] = detached

    def _optimizer_step(self) -> None:
        # Lightning's order: unscale, `on_before_optimizer_step` (gradients as they will be
        # clipped), clipping, the step, `on_before_zero_grad`, zero_grad, step schedulers.
        t = self.trainer
        scaler = self.scaler
        hooks = self._on_before_optimizer_step
        if scaler is not None or hooks:
            for opt in t.optimizers:
                if scaler is not None:
                    scaler.unscale_(opt)
                for fn in hooks:
                    fn(opt)
        clip = t.gradient_clip_val
        if clip:
            params = [p for opt in t.optimizers for g in opt.param_groups for p in g["params"]]
            if t.gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, clip)
            else:
                self._grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        for opt in t.optimizers:
            if scaler is not None:
                scaler.step(opt)
            else:
                opt.step()
            zero_grad_hook = self._module_hooks.get("on_before_zero_grad")
            if zero_grad_hook is not None:
                zero_grad_hook(opt)
            opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()
        self.global_step += 1
        self._pending = 0
        if t.lr_scheduler_configs:
            t._step_schedulers("step")
        start, steps, batches, tokens = self._window
        self._window = (start, steps + 1, batches, tokens)

    def _log_step(self, batch: Any) -> None:
        t = self.trainer
        self.nonfinite.check()  # the values are read now anyway
        values = t._metrics_train.take_step_values()
        start, steps, batches, tokens = self._window
        elapsed = time.perf_counter() - start
        if elapsed > 0 and steps:
            values["perf/step_time_ms"] = 1000.0 * elapsed / steps
            values["perf/samples_per_sec"] = batches * (batch_size_of(batch) or 0) / elapsed
            if tokens:
                values["perf/tokens_per_sec"] = tokens / elapsed
        if self._grad_norm is not None:
            self.last_grad_norm = float(self._grad_norm)
            values["train/grad_norm"] = self.last_grad_norm
        t.log_metrics_now(values, step=self.global_step)
        self._window = (time.perf_counter(), 0, 0, 0)

    # -- validation ----------------------------------------------------------------------------
    def _epoch_due(self) -> bool:
        every = self.trainer.check_val_every_n_epoch
        return every is None or (self.epoch + 1) % every == 0

    def _should_validate(self, is_last: bool) -> bool:
        """Lightning's ``_should_check_val_fx``, after each training batch."""
        every_batches = self.val_check_batch
        if every_batches is None or not self._epoch_due():
            return False
        if every_batches == math.inf:
            return False  # decided when the data runs out (see `_run_epoch`)
        if self.should_stop and self.can_stop_early():
            return True
        count = (
            self.total_batch_idx if self.trainer.check_val_every_n_epoch is None else self.batch_idx
        )
        return count % int(every_batches) == 0

    def validate(self) -> dict[str, float]:
        """One validation epoch inside training (logged; monitored by callbacks)."""
        self.validated = True
        self.done_through = "validation"
        return stages.eval_epoch(self.trainer, "validation", self.val_loaders, self.val_limit)

    def _end_epoch(self) -> None:
        t = self.trainer
        metrics = t._metrics_train
        metrics.stage = "train_epoch"
        metrics.step = self.global_step
        # Lightning's order: other callbacks, the module (which may log epoch metrics), the
        # epoch metrics, epoch schedulers (after a complete epoch), then the callbacks that
        # monitor metrics and save. They run after a cut epoch too (max_steps, a stop).
        monitoring = t._monitoring_callbacks()
        module = t.lightning_module
        for cb in t.callbacks:
            if cb not in monitoring:
                cb.on_train_epoch_end(t, module)
        t._call_module("on_train_epoch_end")
        values = metrics.finish_epoch()
        if values:
            t.log_metrics_now(values, step=self.global_step)
        if self.epoch_exhausted:
            t._step_schedulers("epoch")
        self.done_through = "epoch"
        for cb in monitoring:
            cb.on_train_epoch_end(t, module)
        self.current_epoch = self.epoch + 1
        if self.epoch_exhausted:
            self.epoch, self.batch_idx, self.epoch_exhausted = self.epoch + 1, 0, False

    # -- checkpoint state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The loop's part of a checkpoint: counters, position, RNG and sampler states."""
        return loop_state(self)

    def load_state_dict(self, comps: dict[str, Any], loader_restored: bool) -> None:
        """Continue from a checkpoint's :meth:`state_dict` (applied when the epoch starts)."""
        self._resume = ResumePoint.from_checkpoint(self, comps, loader_restored)


def _overrides(module: Any, hook: str) -> bool:
    from glmx.trainer.module import Module

    return getattr(type(module), hook, None) is not getattr(Module, hook, None)


def _batch_end_outputs(out: Any, loss: Any) -> Any:
    """What ``on_train_batch_end`` receives: ``training_step``'s output with the loss detached,
    as Lightning passes it (a callback that keeps outputs must not keep the autograd graph
    alive). Unlike Lightning, a bare loss stays a tensor and ``None`` stays ``None``."""
    if not isinstance(loss, torch.Tensor):
        return out
    if isinstance(out, dict):
        return {**out, "loss": loss.detach()}
    return loss.detach()
