"""The Python side of the Rust fit loop: `glmx._glmx.fit_loop` calls these hooks at step
boundaries (with the GIL), and runs backward, clipping and the loop bookkeeping itself."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from glmx.trainer.metrics import batch_size_of

if TYPE_CHECKING:
    from glmx.trainer.trainer import Trainer

END_OF_EPOCH = object()


def tokens_of(batch: Any) -> int:
    """Token positions in a batch with ``input_ids`` (0 when there are none)."""
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return int(batch["input_ids"].numel())
    return 0


class FitLoopHooks:
    """Hooks for one ``Trainer.fit``; see ``glmx_core::train::FitHooks`` for the call order."""

    def __init__(self, trainer: Trainer, train_loader: Any, skip_batches: int) -> None:
        self.trainer = trainer
        self.loader = train_loader
        self.iterator: Any = None
        self.batch: Any = None
        self.outputs: Any = None
        self.skip_batches = skip_batches
        self.batches = 0
        self.tokens = 0
        self.window_start = time.perf_counter()
        self.window_steps = 0

    # -- called from Rust ------------------------------------------------------------------
    def start_epoch(self, step: int, epoch: int, batch_idx: int) -> bool:
        t = self.trainer
        t.current_epoch = epoch
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)
        elif hasattr(getattr(self.loader, "sampler", None), "set_epoch"):
            self.loader.sampler.set_epoch(epoch)
        from glmx.ckpt._rng import rng_state, set_rng_state

        # Creating a torch DataLoader iterator draws its shuffle order (and worker seeds) from
        # the global RNG. The state before that draw is kept so a mid-epoch checkpoint can
        # redraw the same order on resume; the state at the checkpoint is restored afterwards.
        if t._pending_epoch_rng_state is not None:
            set_rng_state(t._pending_epoch_rng_state)
            t._pending_epoch_rng_state = None
        t._epoch_rng_state = rng_state()
        self.iterator = iter(self.loader)
        # A loader restored from a checkpoint (state_dict) resumes exactly; others replay.
        for _ in range(self.skip_batches):
            next(self.iterator, None)
        t._next_batch_idx = self.skip_batches
        self.skip_batches = 0
        if t._pending_rng_state is not None:
            set_rng_state(t._pending_rng_state)
            t._pending_rng_state = None
        t._metrics_train.stage = "train_epoch"
        t._call("on_train_epoch_start")
        return t.should_stop

    def forward(self, step: int, epoch: int, batch_idx: int) -> Any:
        t = self.trainer
        try:
            batch = next(self.iterator)
        except StopIteration:
            return END_OF_EPOCH
        batch = t._to_device(batch)
        self.batch = batch
        metrics = t._metrics_train
        metrics.stage = "train"
        metrics.batch = batch  # its size is read only if something is logged per epoch
        self.batches += 1
        self.tokens += tokens_of(batch)
        t._call("on_train_batch_start", batch, batch_idx)
        with t._autocast():
            out = t._step_runner(batch, batch_idx)
        self.outputs = out
        loss = out.get("loss") if isinstance(out, dict) else out
        if loss is None:
            return None
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise t._error(
                f"training_step must return a scalar loss tensor, a dict with 'loss', or None; "
                f"got {type(loss).__name__} at step {step}"
            )
        t._call_module("on_before_backward", loss)
        return loss

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return self.trainer._scaler.scale(loss)

    def after_backward(self) -> None:
        self.trainer._call("on_after_backward")

    def before_optimizer_step(self) -> None:
        # Lightning's order: unscale, `on_before_optimizer_step` (gradients as they will be
        # clipped), then clipping and the step (both done by the Rust loop).
        t = self.trainer
        for opt in t.optimizers:
            if t._scaler is not None:
                t._scaler.unscale_(opt)
            t._call("on_before_optimizer_step", opt)

    def optimizer_step(
        self, step: int, epoch: int, batch_idx: int, grad_norm: float | None
    ) -> None:
        t = self.trainer
        t.global_step = step
        t._last_grad_norm = grad_norm
        for opt in t.optimizers:
            if t._scaler is not None:
                t._scaler.step(opt)
            else:
                opt.step()
            t._call_module("on_before_zero_grad", opt)
            opt.zero_grad(set_to_none=True)
        if t._scaler is not None:
            t._scaler.update()
        t._step_schedulers("step")
        self.window_steps += 1

    def end_batch(self, step: int, epoch: int, batch_idx: int, loss: Any, stepped: bool) -> bool:
        t = self.trainer
        t.global_step = step
        metrics = t._metrics_train
        if loss is not None:
            t._last_loss = loss
            metrics.progress_bar["loss"] = loss
        t._next_batch_idx = batch_idx + 1
        t._call("on_train_batch_end", self.outputs, self.batch, batch_idx)
        if stepped and t.is_log_step(step):
            values = metrics.take_step_values()
            elapsed = time.perf_counter() - self.window_start
            if elapsed > 0 and self.window_steps:
                values["perf/step_time_ms"] = 1000.0 * elapsed / self.window_steps
                size = batch_size_of(self.batch) or 0
                values["perf/samples_per_sec"] = self.batches * size / elapsed
                if self.tokens:
                    values["perf/tokens_per_sec"] = self.tokens / elapsed
            if t._last_grad_norm is not None:
                values["train/grad_norm"] = t._last_grad_norm
            t.log_metrics_now(values, step=step)
            self.batches = self.tokens = self.window_steps = 0
            self.window_start = time.perf_counter()
        if t._should_validate_mid_epoch(epoch, batch_idx):
            t._run_validation()
        if t.should_stop and epoch < t.min_epochs:
            t.should_stop = False  # stopping waits for min_epochs complete epochs, as in Lightning
        # Stop decisions made here are already agreed across ranks (early stopping reduces its
        # decision, job control broadcasts its commands): no collective on every step.
        return t.should_stop

    def end_epoch(self, step: int, epoch: int, batch_idx: int) -> bool:
        t = self.trainer
        t.global_step = step
        if t._should_validate_at_epoch_end(epoch):
            t._run_validation()
        t._metrics_train.stage = "train_epoch"
        # Lightning's order: other callbacks, the module (which may log epoch metrics), the
        # epoch metrics, epoch schedulers, then the callbacks that monitor metrics and save.
        monitoring = t._monitoring_callbacks()
        for cb in t.callbacks:
            if cb not in monitoring:
                cb.on_train_epoch_end(t, t.lightning_module)
        t._call_module("on_train_epoch_end")
        values = t._metrics_train.finish_epoch()
        if values:
            t.log_metrics_now(values, step=step)
        t._step_schedulers("epoch")
        for cb in monitoring:
            cb.on_train_epoch_end(t, t.lightning_module)
        if t.should_stop and epoch + 1 < t.min_epochs:
            t.should_stop = False  # early stopping waits for min_epochs, as in Lightning
        return t._agree_to_stop()
