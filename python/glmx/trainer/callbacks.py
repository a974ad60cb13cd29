"""Callbacks with Lightning's hook names: ``EarlyStopping``, ``LearningRateMonitor``,
``ProgressBar`` (terminal and Jupyter). ``ModelCheckpoint`` lives in :mod:`glmx.trainer.checkpoint`."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

from glmx.errors import TrainError

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer


class Callback:
    """Base class; override any hook. Hooks receive ``(trainer, module, ...)`` like Lightning's."""

    def setup(self, trainer: Trainer, pl_module: Module, stage: str) -> None: ...
    def teardown(self, trainer: Trainer, pl_module: Module, stage: str) -> None: ...
    def on_fit_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_fit_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_train_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: Module, batch: Any, batch_idx: int
    ) -> None: ...
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_validation_batch_start(
        self, trainer: Trainer, pl_module: Module, batch: Any, batch_idx: int
    ) -> None: ...
    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_test_batch_start(
        self, trainer: Trainer, pl_module: Module, batch: Any, batch_idx: int
    ) -> None: ...
    def on_test_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_test_epoch_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_validation_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_validation_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_test_start(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_test_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_test_epoch_end(self, trainer: Trainer, pl_module: Module) -> None: ...
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: Module, optimizer: Any
    ) -> None: ...
    def on_exception(
        self, trainer: Trainer, pl_module: Module, exception: BaseException
    ) -> None: ...
    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: Module, checkpoint: dict[str, Any]
    ) -> None: ...
    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: Module, checkpoint: dict[str, Any]
    ) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` checks."""

    def __init__(
        self,
        monitor: str,
        min_delta: float = 0.0,
        patience: int = 3,
        mode: str = "min",
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
        verbose: bool = False,
    ) -> None:
        if mode not in ("min", "max"):
            raise TrainError(f"EarlyStopping mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.min_delta, self.patience, self.mode = (
            monitor,
            min_delta,  # signed as in Lightning: a negative one tolerates a small worsening
            patience,
            mode,
        )
        self.strict, self.check_finite, self.stopping_threshold = (
            strict,
            check_finite,
            stopping_threshold,
        )
        self.divergence_threshold = divergence_threshold
        self.check_on_train_epoch_end = check_on_train_epoch_end
        self.wait_count = 0
        self.best_score = math.inf if mode == "min" else -math.inf
        self.stopped_epoch = 0
        self.stop_reason = ""

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best_score - self.min_delta
        return value > self.best_score + self.min_delta

    def _check(self, trainer: Trainer) -> None:
        if trainer.fast_dev_run:
            return  # fast_dev_run never stops early (Lightning)
        value = trainer.callback_metrics_float(self.monitor)
        if value is None:
            if self.strict:
                raise trainer.missing_metric_error(self.monitor, "EarlyStopping")
            return
        if self.check_finite and not math.isfinite(value):
            self._stop(trainer, f"{self.monitor} = {value} is not finite")
        elif self.stopping_threshold is not None and (
            value < self.stopping_threshold
            if self.mode == "min"
            else value > self.stopping_threshold
        ):
            self._stop(trainer, f"{self.monitor} = {value:.6g} reached the stopping threshold")
        elif self.divergence_threshold is not None and (
            value > self.divergence_threshold
            if self.mode == "min"
            else value < self.divergence_threshold
        ):
            self._stop(trainer, f"{self.monitor} = {value:.6g} passed the divergence threshold")
        elif self._improved(value):
            self.best_score, self.wait_count = value, 0
        else:
            self.wait_count += 1
            if self.wait_count >= self.patience:
                self._stop(trainer, f"{self.monitor} did not improve for {self.patience} checks")

    def _stop(self, trainer: Trainer, reason: str) -> None:
        self.stop_reason = reason
        self.stopped_epoch = trainer.current_epoch
        trainer.should_stop = True

    def on_validation_end(self, trainer: Trainer, pl_module: Module) -> None:
        if not self.check_on_train_epoch_end and not trainer.sanity_checking:
            self._check(trainer)
            trainer.sync_should_stop()  # every rank validates here, so all take part

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Module) -> None:
        if self.check_on_train_epoch_end:
            self._check(trainer)
            trainer.sync_should_stop()

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "best_score": self.best_score,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait_count = int(state["wait_count"])
        self.best_score = float(state["best_score"])
        self.stopped_epoch = int(state["stopped_epoch"])


class LearningRateMonitor(Callback):
    """Logs each optimizer param group's learning rate as ``lr-<Optimizer>[/pg<i>]``."""

    def __init__(self, logging_interval: str | None = "step", log_momentum: bool = False) -> None:
        if logging_interval not in (None, "step", "epoch"):
            raise TrainError(
                f"logging_interval must be 'step', 'epoch' or None, got {logging_interval!r}"
            )
        self.logging_interval, self.log_momentum = logging_interval, log_momentum

    def _values(self, trainer: Trainer) -> dict[str, float]:
        out: dict[str, float] = {}
        for opt in trainer.optimizers:
            name = f"lr-{type(opt).__name__}"
            groups = opt.param_groups
            for i, group in enumerate(groups):
                key = name if len(groups) == 1 else f"{name}/pg{i + 1}"
                out[key] = float(group["lr"])
                if self.log_momentum and "betas" in group:
                    out[key.replace("lr-", "lr-momentum-", 1)] = float(group["betas"][0])
        return out

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: Module, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval in (None, "step") and trainer.is_log_step():
            trainer.log_metrics_now(self._values(trainer))

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Module) -> None:
        if self.logging_interval == "epoch":
            trainer.log_metrics_now(self._values(trainer))


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = getattr(shell, "get_ipython", lambda: None)()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class ProgressBar(Callback):
    """One-line progress with step, loss, throughput and ETA: redrawn in place in a terminal,
    updated in a display area in Jupyter, printed every ``refresh_rate`` steps when piped."""

    def __init__(self, refresh_rate: int = 1, leave: bool = True) -> None:
        self.refresh_rate, self.leave = max(1, refresh_rate), leave
        self._start = 0.0
        self._handle: Any = None
        self._tty = sys.stderr.isatty()
        self._notebook = _in_notebook()
        self._last_print = 0.0

    def _render(self, trainer: Trainer) -> str:
        total = trainer.estimated_stepping_batches
        step = trainer.global_step
        elapsed = time.monotonic() - self._start
        parts = [f"epoch {trainer.current_epoch}", f"step {step}" + (f"/{total}" if total else "")]
        for name, value in trainer.progress_bar_metrics.items():
            parts.append(f"{name}={value:.4g}")
        if step and total:
            eta = elapsed / step * (total - step)
            parts.append(f"eta {eta:.0f}s")
        parts.append(f"{elapsed:.0f}s")
        return " | ".join(parts)

    def _show(self, text: str, final: bool = False) -> None:
        if self._notebook:
            from IPython.display import display  # only in Jupyter

            if self._handle is None:
                self._handle = display(text, display_id=True)
            else:
                self._handle.update(text)
        elif self._tty:
            sys.stderr.write("\r" + text.ljust(100)[:160] + ("\n" if final else ""))
            sys.stderr.flush()
        else:
            now = time.monotonic()
            if final or now - self._last_print >= 5.0:
                print(text, file=sys.stderr, flush=True)
                self._last_print = now

    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_rank == 0 and trainer.global_step % self.refresh_rate == 0:
            self._show(self._render(trainer))

    def on_validation_end(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.global_rank == 0 and not trainer.sanity_checking:
            self._show(self._render(trainer))

    def on_train_end(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.global_rank == 0:
            self._show(self._render(trainer), final=self.leave)
