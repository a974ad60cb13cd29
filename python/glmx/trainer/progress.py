"""Progress bars: ``ProgressBar`` (a tqdm-style bar in terminals, an ipywidgets bar in Jupyter,
plain periodic lines when output is piped) and ``RichProgressBar`` (needs ``rich``).

While a terminal bar is shown, log records written by stream handlers to the terminal are
printed above it (the bar is cleared, the record written, the bar redrawn), never glued to it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Any

from glmx.trainer import callbacks as _callbacks
from glmx.trainer._console import ACTIVE as _ACTIVE
from glmx.trainer._console import write_line  # noqa: F401  (re-exported: print above the bar)
from glmx.trainer.progress_notebook import BarLine, NotebookBar

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class _AboveBar:
    """A stream proxy for logging handlers: each complete line is printed above the bar."""

    def __init__(self, stream: Any, bar: ProgressBar) -> None:
        self.stream, self.bar, self._buf = stream, bar, ""

    def write(self, text: str) -> int:
        self._buf += text
        if "\n" in self._buf:
            lines, self._buf = self._buf.rsplit("\n", 1)
            self.bar._print_above(lines)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class ProgressBar(_callbacks.ProgressBar):
    """Training progress: ``Epoch 0:  45%|████▌     | 9/20 [00:01<00:01, 8.1it/s, loss=2.31]``,
    and a ``Validation`` bar while a validation runs (shown in place of the training bar) and a
    ``Testing`` / ``Validating`` bar for ``Trainer.test`` / ``Trainer.validate``.

    In a terminal the bar is redrawn in place (at most every ``refresh_rate`` steps and every
    0.1 s) and log records appear above it; in Jupyter an ipywidgets bar with the same text
    beside it (a clean text line when ipywidgets is missing); when piped, one line every 5 s
    and a final one (``leave``).
    """

    width = 20

    def __init__(self, refresh_rate: int = 1, leave: bool = True, **_: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._drawn = ""
        self._last_draw = 0.0
        self._rate_mark = (0.0, 0)
        self._rate = 0.0
        self._nb: NotebookBar | None = None
        self._in_fit = False
        self._eval: list[Any] | None = None  # [title, start, batches done, total or None]
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []

    # -- text ------------------------------------------------------------------------------
    def _numbers(self, trainer: Trainer) -> tuple[int, int | None, float, float]:
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        now = time.monotonic()
        elapsed = now - self._start
        mark_t, mark_step = self._rate_mark
        if now - mark_t >= 1.0 or self._rate == 0.0:
            if now > mark_t and step > mark_step:
                self._rate = (step - mark_step) / (now - mark_t)
            self._rate_mark = (now, step)
        return step, total, elapsed, self._rate

    def _metrics_text(self, trainer: Trainer) -> str:
        shown = trainer.progress_bar_metrics
        if len(shown) > 1:  # the raw step loss only when the module shows nothing itself
            shown.pop("loss", None)
        return ", ".join(f"{k}={v:.4g}" for k, v in shown.items())

    @staticmethod
    def _bracket(n: int, total: int | None, elapsed: float, rate: float, metrics: str) -> str:
        times = f"[{_fmt_time(elapsed)}"
        if total:
            eta = (total - n) / rate if rate > 0 else 0.0
            times += f"<{_fmt_time(eta)}"
        tail = f", {rate:.2f}it/s" if rate else ", ?it/s"
        return times + tail + (", " + metrics if metrics else "") + "]"

    def _line(self, trainer: Trainer) -> BarLine:
        if self._eval is not None:
            title, start, n, total = self._eval
            elapsed = time.monotonic() - start
            rate = n / elapsed if n and elapsed > 0 else 0.0
            return BarLine(title, n, total, "batches", self._bracket(n, total, elapsed, rate, ""))
        step, total, elapsed, rate = self._numbers(trainer)
        bracket = self._bracket(step, total, elapsed, rate, self._metrics_text(trainer))
        return BarLine(f"Epoch {trainer.fit_loop.epoch}", step, total, "steps", bracket)

    def _render(self, trainer: Trainer) -> str:
        return self._line(trainer).text(self.width)

    # -- terminal drawing ------------------------------------------------------------------
    def _clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()

    def _redraw(self) -> None:
        if self._drawn:
            sys.stderr.write(self._drawn)
            sys.stderr.flush()

    def _print_above(self, text: str) -> None:
        self._clear()
        sys.stderr.write(text + "\n")
        self._redraw()

    def _show(self, text: str, final: bool = False) -> None:
        if self._notebook or self._tty:
            now = time.monotonic()
            if not final and now - self._last_draw < 0.1:
                return  # at most 10 redraws a second
            self._last_draw = now
        if self._notebook:
            if self._trainer is not None:
                if self._nb is None:
                    self._nb = NotebookBar()
                self._nb.update(self._line(self._trainer), final)
        elif self._tty:
            self._clear()
            self._drawn = text
            sys.stderr.write(text + ("\n" if final else ""))
            sys.stderr.flush()
            if final:
                self._drawn = ""
        else:
            super()._show(text, final)

    # -- log records above the bar ---------------------------------------------------------
    def _redirect_logging(self) -> None:
        seen = set()
        for name in (None, "glmx"):
            for h in logging.getLogger(name).handlers:
                stream = getattr(h, "stream", None)
                if (
                    isinstance(h, logging.StreamHandler)
                    and id(h) not in seen
                    and stream in (sys.stderr, sys.stdout)
                ):
                    seen.add(id(h))
                    self._swapped.append((h, stream))
                    h.stream = _AboveBar(stream, self)

    def _restore_logging(self) -> None:
        for h, stream in self._swapped:
            h.stream = stream
        self._swapped = []

    # -- hooks -----------------------------------------------------------------------------
    def _begin(self, trainer: Trainer) -> None:
        self._trainer = trainer
        self._last_draw = 0.0
        if trainer.global_rank == 0 and self._tty and not self._notebook and self not in _ACTIVE:
            _ACTIVE.append(self)
            self._redirect_logging()

    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None:
        super().on_train_start(trainer, pl_module)
        self._in_fit, self._eval, self._nb = True, None, None
        self._rate_mark, self._rate = (self._start, trainer.global_step), 0.0
        self._begin(trainer)

    def _finish(self) -> None:
        self._restore_logging()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = ""

    def on_train_end(self, trainer: Trainer, pl_module: Module) -> None:
        self._eval = None
        if trainer.global_rank == 0:
            self._last_draw = 0.0
            self._show(self._render(trainer), final=True)
            if not self.leave and self._tty and not self._notebook:
                sys.stderr.write("\x1b[1A\x1b[2K")
        self._in_fit = False
        self._finish()

    def on_exception(self, trainer: Trainer, pl_module: Module, exception: BaseException) -> None:
        if self._nb is not None and trainer.global_rank == 0:
            self._nb.update(self._line(trainer), final=True, failed=True)
        self._in_fit, self._eval = False, None
        self._finish()

    # validation and test: a bar of batches (in place of the training bar during fit)
    @staticmethod
    def _eval_total(trainer: Trainer, title: str) -> int | None:
        counts = getattr(trainer, "num_test_batches" if title == "Testing" else "num_val_batches")
        total = sum(counts or [])
        # a loader without a length and no limit: count only
        return int(total) if total and math.isfinite(total) else None

    def _eval_start(self, trainer: Trainer, title: str) -> None:
        if trainer.global_rank != 0 or trainer.sanity_checking:
            return
        total = self._eval_total(trainer, title)
        self._eval = [title, time.monotonic(), 0, total]
        if not self._in_fit:
            self._nb = None  # a new bar under the cell's other outputs
            self._begin(trainer)
        self._last_draw = 0.0  # drawn at once: the user sees that validation has begun
        self._show(self._render(trainer))

    def _eval_step(self, trainer: Trainer) -> None:
        if self._eval is not None:
            self._eval[2] += 1
            if self._eval[2] % self.refresh_rate == 0:
                self._show(self._render(trainer))

    def _eval_end(self, trainer: Trainer) -> None:
        if self._eval is None:
            return
        self._last_draw = 0.0
        if self._in_fit:
            self._eval = None  # back to the training bar
            self._show(self._render(trainer))
            return
        self._show(self._render(trainer), final=True)
        self._eval = None
        self._finish()

    def on_validation_start(self, trainer: Trainer, pl_module: Module) -> None:
        self._eval_start(trainer, "Validation" if self._in_fit else "Validating")

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._eval_step(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: Module) -> None:
        self._eval_end(trainer)

    def on_test_start(self, trainer: Trainer, pl_module: Module) -> None:
        self._eval_start(trainer, "Testing")

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._eval_step(trainer)

    def on_test_end(self, trainer: Trainer, pl_module: Module) -> None:
        self._eval_end(trainer)

    _trainer: Any = None


class RichProgressBar(ProgressBar):
    """The progress bar drawn with ``rich`` (Lightning's ``RichProgressBar``;
    ``pip install 'glmx[progress]'``; without rich, a warning and the plain bar). Outside a
    terminal it prints plain lines like :class:`ProgressBar`."""

    def __init__(
        self, refresh_rate: int = 1, leave: bool = True, theme: Any = None, **_: Any
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._has_rich = importlib.util.find_spec("rich") is not None
        if not self._has_rich:
            logging.getLogger("glmx.trainer").warning(
                "RichProgressBar: rich is not installed (pip install 'glmx[progress]'); "
                "showing the plain progress bar"
            )
        self._progress: Any = None
        self._task: Any = None

    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None:
        super().on_train_start(trainer, pl_module)
        if trainer.global_rank != 0 or not self._tty or self._notebook or not self._has_rich:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rate]} {task.fields[metrics]}"),
            console=Console(file=sys.stderr),
            transient=not self.leave,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "Epoch 0", total=trainer.estimated_stepping_batches, rate="", metrics=""
        )

    def _show(self, text: str, final: bool = False) -> None:
        if self._progress is None:
            super()._show(text, final)
            return
        t = self._trainer
        _, _, _, rate = self._numbers(t)
        self._progress.update(
            self._task,
            completed=t.global_step,
            description=f"Epoch {t.fit_loop.epoch}",
            rate=f"{rate:.2f}it/s" if rate else "",
            metrics=self._metrics_text(t),
        )

    def _clear(self) -> None:
        if self._progress is None:
            super()._clear()

    def _redraw(self) -> None:
        if self._progress is None:
            super()._redraw()

    def _print_above(self, text: str) -> None:
        if self._progress is None:
            super()._print_above(text)
        else:
            self._progress.console.print(text, markup=False, highlight=False)

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        super()._finish()


def add_default_callbacks(
    callbacks: list[Any], enable_progress_bar: bool, enable_model_summary: Any
) -> None:
    """The Trainer's defaults: a progress bar and the end-of-run summary (with
    ``enable_progress_bar``), a model summary (with ``enable_model_summary``), unless given."""
    from glmx.trainer.model_summary import ModelSummary
    from glmx.trainer.run_summary import RunSummary

    def has(kind: type) -> bool:
        return any(isinstance(c, kind) for c in callbacks)

    if enable_progress_bar and not has(_callbacks.ProgressBar):
        callbacks.append(ProgressBar())
    if enable_progress_bar and not has(RunSummary):
        callbacks.append(RunSummary())
    if enable_model_summary and not has(ModelSummary):
        callbacks.append(ModelSummary())
    from glmx.trainer.loggers_ext import LoggerHooks

    if not has(LoggerHooks):
        callbacks.append(LoggerHooks())  # hparams to the loggers, after_fit artifacts
