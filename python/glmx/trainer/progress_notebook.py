"""The progress bar in Jupyter: an ipywidgets bar with the bar's text beside it, or, without
ipywidgets, the text line updated in place.

The widget's display also carries the bar's text as ``text/plain`` (rewritten when a stage
ends or is interrupted), so a viewer that cannot draw widgets (GitHub, nbconvert, a notebook
opened without its widget state) shows the last line of the bar, never a widget's repr.
"""

from __future__ import annotations

import importlib.util
from typing import Any, NamedTuple


class BarLine(NamedTuple):
    """One state of a bar: ``title`` ("Epoch 2", "Validation", "Testing"), ``n`` of ``total``
    (``None``: unknown), and the bracketed times, rate and metrics."""

    title: str
    n: int
    total: int | None
    unit: str
    bracket: str

    def text(self, width: int = 20) -> str:
        """``Epoch 0:  45%|████▌     | 9/20 [00:01<00:01, 8.10it/s, loss=2.31]``."""
        if self.total:
            frac = min(1.0, self.n / self.total)
            filled = frac * width
            full = int(filled)
            part = " ▏▎▍▌▋▊▉"[int((filled - full) * 8)] if full < width else ""
            bar = ("█" * full + part).ljust(width)
            return f"{self.title}: {frac * 100:3.0f}%|{bar}| {self.n}/{self.total} {self.bracket}"
        return f"{self.title}: {self.n} {self.unit} {self.bracket}"

    def label(self) -> str:
        """The text beside the widget bar: the line without its title and bar glyphs."""
        if self.total:
            pct = f"{min(1.0, self.n / self.total) * 100:.0f}%"
            return f"{pct} {self.n}/{self.total} {self.bracket}"
        return f"{self.n} {self.unit} {self.bracket}"


class NotebookBar:
    """One bar in a notebook cell's output (an ipywidgets ``HBox(IntProgress, HTML)``, or a
    text display when ipywidgets is missing)."""

    def __init__(self) -> None:
        self._widgets: Any = None
        self._handle: Any = None
        self._fallback = importlib.util.find_spec("ipywidgets") is None

    def _bundle(self, text: str) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": text}
        if self._widgets is not None:
            data["application/vnd.jupyter.widget-view+json"] = {
                "model_id": self._widgets[2].model_id,
                "version_major": 2,
                "version_minor": 0,
            }
        return data

    def update(self, line: BarLine, final: bool = False, failed: bool = False) -> None:
        """Show ``line``; ``final`` marks the stage's end (the bar turns green, or red when
        ``failed``) and rewrites the display's text."""
        from IPython.display import display

        text = line.text()
        if self._fallback:
            if self._handle is None:
                self._handle = display(self._bundle(text), raw=True, display_id=True)
            else:
                self._handle.update(self._bundle(text), raw=True)
            return
        if self._widgets is None:
            import ipywidgets as w  # type: ignore[import-untyped]

            bar = w.IntProgress(min=0, max=1, description=line.title)
            label = w.HTML()
            self._widgets = (bar, label, w.HBox([bar, label]))
            self._handle = display(self._bundle(text), raw=True, display_id=True)
        bar, label, _ = self._widgets
        bar.description = line.title
        bar.max = max(1, line.total or line.n)
        bar.value = min(bar.max, line.n)
        label.value = "<code>" + _html(line.label()) + "</code>"
        if final:
            bar.bar_style = "danger" if failed else "success"
            self._handle.update(self._bundle(text), raw=True)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
