"""`RunSummary`: what a run ends with, like Lightning and lightning-hydra-template print it::

    `Trainer.fit` stopped: `max_steps=20` reached.
    Best ckpt path: .../checkpoints/checkpoint-20 (val/loss=1.234)
    Last ckpt path: .../checkpoints/checkpoint-20
    Output dir: ...
    Wall time: 12.3s, 20 steps, 4,210 tokens/s

and, after ``Trainer.test``, ``Test metrics: test/loss=1.25``. Added by default with the
progress bar (``enable_progress_bar``); the lines are also kept in ``self.lines``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from glmx.trainer._data_state import tokens_of
from glmx.trainer.callbacks import Callback, EarlyStopping

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer


def stop_reason(trainer: Trainer) -> str:
    """Why ``fit`` ended, in Lightning's words."""
    loop = trainer.fit_loop
    for cb in trainer.callbacks:
        if isinstance(cb, EarlyStopping) and cb.stop_reason:
            return f"`Trainer.fit` stopped: EarlyStopping: {cb.stop_reason}."
    if loop.max_steps_reached:
        return f"`Trainer.fit` stopped: `max_steps={trainer.max_steps}` reached."
    if trainer.max_epochs is not None and loop.epoch >= trainer.max_epochs:
        return f"`Trainer.fit` stopped: `max_epochs={trainer.max_epochs}` reached."
    if loop.should_stop:
        return "`Trainer.fit` stopped: `trainer.should_stop` was set."
    return "`Trainer.fit` stopped: the training data ran out."


class RunSummary(Callback):
    """Prints why ``fit`` stopped, the best checkpoint (path and score), the last checkpoint,
    the output directory, wall time and tokens/s, and the test metrics after ``test``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._start = 0.0
        self._tokens = 0
        self._steps0 = 0

    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None:
        self._start, self._tokens, self._steps0 = time.perf_counter(), 0, trainer.global_step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(batch, dict):
            self._tokens += tokens_of(batch)

    def _emit(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        from glmx.trainer._console import write_line

        for line in lines:
            write_line(line)

    def on_fit_end(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.global_rank != 0:
            return
        from glmx.trainer.checkpointing import ModelCheckpoint

        lines = [stop_reason(trainer)]
        for cb in trainer.callbacks:
            if not isinstance(cb, ModelCheckpoint):
                continue
            if cb.best_model_path:
                score = ""
                try:
                    manager: Any = cb.manager
                    value = manager.manifest(cb.best_model_path)["metrics"].get(cb.monitor)
                    score = f" ({cb.monitor}={value:.6g})" if value is not None else ""
                except Exception:  # noqa: BLE001 - the score is a nicety; the path is the fact
                    score = ""
                lines.append(f"Best ckpt path: {cb.best_model_path}{score}")
            if cb.last_model_path:
                lines.append(f"Last ckpt path: {cb.last_model_path}")
        lines.append(f"Output dir: {trainer.default_root_dir}")
        wall = time.perf_counter() - self._start
        steps = trainer.global_step - self._steps0
        text = f"Wall time: {wall:.1f}s, {steps} steps"
        if self._tokens and wall > 0:
            text += f", {self._tokens / wall:,.0f} tokens/s"
        self._emit(lines + [text])

    def on_test_end(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.global_rank != 0:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("test") and _is_number(v)
        }
        if metrics:
            shown = ", ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items()))
            self._emit([f"Test metrics: {shown}"])


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
