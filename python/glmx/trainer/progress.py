"""Progress bars: ``ProgressBar`` (a tqdm-style bar in terminals, an ipywidgets bar in Jupyter,
plain periodic lines when output is piped) and ``RichProgressBar`` (needs ``rich``).

While a terminal bar is shown, log records written by stream handlers to the terminal are
printed above it (the bar is cleared, the record written, the bar redrawn), never glued to it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from glmx.trainer import callbacks as _callbacks
from glmx.trainer._console import ACTIVE as _ACTIVE
from glmx.trainer._console import write_line  # noqa: F401  (re-exported: print above the bar)

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
    """Training progress: ``Epoch 0:  45%|████▌     | 9/20 [00:01<00:01, 8.1it/s, loss=2.31]``.

    In a terminal the bar is redrawn in place (at most every ``refresh_rate`` steps and every
    0.1 s) and log records appear above it; in Jupyter an ipywidgets bar (a clean text line
    when ipywidgets is missing); when piped, one line every 5 s and a final one (``leave``).
    """

    width = 20

    def __init__(self, refresh_rate: int = 1, leave: bool = True, **_: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._drawn = ""
        self._last_draw = 0.0
        self._rate_mark = (0.0, 0)
        self._rate = 0.0
        self._widgets: Any = None
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

    def _render(self, trainer: Trainer) -> str:
        step, total, elapsed, rate = self._numbers(trainer)
        head = f"Epoch {trainer.fit_loop.epoch}: "
        if total:
            frac = min(1.0, step / total)
            filled = frac * self.width
            full = int(filled)
            part = " ▏▎▍▌▋▊▉"[int((filled - full) * 8)] if full < self.width else ""
            bar = ("█" * full + part).ljust(self.width)
            eta = (total - step) / rate if rate > 0 else 0.0
            head += f"{frac * 100:3.0f}%|{bar}| {step}/{total} "
            times = f"[{_fmt_time(elapsed)}<{_fmt_time(eta)}"
        else:
            head += f"{step} steps "
            times = f"[{_fmt_time(elapsed)}"
        tail = f", {rate:.2f}it/s" if rate else ", ?it/s"
        metrics = self._metrics_text(trainer)
        return head + times + tail + (", " + metrics if metrics else "") + "]"

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
            self._show_notebook(text, final)
        elif self._tty:
            self._clear()
            self._drawn = text
            sys.stderr.write(text + ("\n" if final else ""))
            sys.stderr.flush()
            if final:
                self._drawn = ""
        else:
            super()._show(text, final)

    def _show_notebook(self, text: str, final: bool) -> None:
        from IPython.display import Pretty, display

        if self._widgets is None and importlib.util.find_spec("ipywidgets") is not None:
            import ipywidgets as w  # type: ignore[import-untyped]

            bar = w.IntProgress(min=0, max=1, description="Training")
            label = w.HTML()
            self._widgets = (bar, label)
            display(w.HBox([bar, label]))
        if self._widgets is not None:
            bar, label = self._widgets
            t = self._trainer
            step = t.global_step if t is not None else 0
            bar.max = max(1, (t.estimated_stepping_batches if t is not None else None) or step)
            bar.value = min(bar.max, step)
            if final:
                bar.bar_style = "success"
            label.value = "<code>" + text.split("|")[-1].strip() + "</code>"
            return
        if self._handle is None:
            self._handle = display(Pretty(text), display_id=True)
        else:
            self._handle.update(Pretty(text))

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
    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None:
        super().on_train_start(trainer, pl_module)
        self._trainer = trainer
        self._rate_mark, self._rate, self._last_draw = (self._start, trainer.global_step), 0.0, 0
        if trainer.global_rank == 0 and self._tty and not self._notebook:
            _ACTIVE.append(self)
            self._redirect_logging()

    def _finish(self) -> None:
        self._restore_logging()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = ""

    def on_train_end(self, trainer: Trainer, pl_module: Module) -> None:
        if trainer.global_rank == 0:
            self._last_draw = 0.0
            self._show(self._render(trainer), final=True)
            if not self.leave and self._tty and not self._notebook:
                sys.stderr.write("\x1b[1A\x1b[2K")
        self._finish()

    def on_exception(self, trainer: Trainer, pl_module: Module, exception: BaseException) -> None:
        self._finish()

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
