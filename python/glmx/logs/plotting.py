"""Plots of training logs with matplotlib (Agg backend: works without a display)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmx.errors import GlmxError
from glmx.logs import TrainingLog, _as_log

__all__ = ["plot_logs", "smooth"]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel, where figures should show inline."""
    return "ipykernel" in sys.modules


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (the first points average what exists)."""
    if window <= 1:
        return list(values)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _default_metrics(logs: list[TrainingLog], loss_curves: bool) -> list[str]:
    names: dict[str, None] = {}
    for log in logs:
        for m in log.metrics:
            if "loss" in m:
                names.setdefault(m, None)
    if not loss_curves and names:
        # without --loss-curves: the training loss with the validation and test losses
        first = next((log.loss_metric() for log in logs if log.loss_metric()), None)
        if not first:
            return list(names)
        evals = [m for m in names if m != first and m.split("/")[0] in ("val", "valid", "test")]
        return [first, *evals]
    return list(names)


_STYLES = ("-", "--", "-.", ":")
_SPARSE = 20  # series with at most this many points get markers (one point stays visible)


def _style(i: int, n_points: int) -> dict[str, Any]:
    """Distinct line style per series; markers on sparse series."""
    style: dict[str, Any] = {"linestyle": _STYLES[i % len(_STYLES)]}
    if n_points <= _SPARSE:
        style.update(marker="os^Dv"[i % 5], markersize=5 if n_points > 1 else 7)
    return style


def plot_logs(
    paths: Sequence[str | os.PathLike[str] | TrainingLog] | str | os.PathLike[str] | TrainingLog,
    metrics: Sequence[str] | None = None,
    x_axis: str = "step",
    smooth_window: int = 0,
    log_scale: bool = False,
    output: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    loss_curves: bool = False,
    labels: Sequence[str] | None = None,
    lr: bool = True,
) -> Any:
    """Plots ``metrics`` of one or several logs (runs overlaid, labelled) and returns the Figure.

    Args:
        paths: log files or run directories (or :class:`TrainingLog` objects).
        metrics: names to plot (default: the training loss; with ``loss_curves``, every
            ``*loss*`` metric).
        x_axis: ``step``, ``epoch`` or ``time``.
        smooth_window: moving-average window (0 or 1: raw values).
        log_scale: logarithmic y axis.
        output: file to write; its suffix or ``fmt`` (``png``, ``svg``, ``pdf``) picks the format.
        loss_curves: plot every loss metric (train and validation) together.
        labels: run labels (default: each run's directory).
        lr: put ``lr-*`` metrics, when logged, on a second y axis.
    """
    from glmx._optional import require

    matplotlib = require("matplotlib", "plot", "Plotting training logs")
    if not _in_notebook():
        matplotlib.use("Agg")  # files only; a notebook keeps its inline backend
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # keep labels as text in SVG output
    if isinstance(paths, (str, os.PathLike, TrainingLog)):
        paths = [paths]
    logs = [_as_log(p) for p in paths]
    if not logs:
        raise GlmxError("no logs to plot")
    labels = list(labels) if labels else [log.name for log in logs]
    if len(labels) != len(logs):
        raise GlmxError(f"{len(labels)} labels for {len(logs)} logs")
    metrics = list(metrics) if metrics else _default_metrics(logs, loss_curves)
    available = sorted({m for log in logs for m in log.metrics})
    missing = [m for m in metrics if m not in available]
    if missing or not metrics:
        raise GlmxError(
            f"metric(s) {', '.join(missing) or '(none)'} not in the logs; logged: {', '.join(available)}"
        )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    plotted = []
    for log, label in zip(logs, labels, strict=True):
        for metric in metrics:
            xs, ys = log.series(metric, x_axis)
            if xs:
                name = metric if len(logs) == 1 else f"{label}: {metric}"
                style = _style(len(plotted), len(xs))
                ax.plot(xs, smooth(ys, smooth_window), label=name, linewidth=1.2, **style)
                plotted.append(name)
    ax2 = None
    lr_names = [m for m in available if m.startswith("lr-") and not m.startswith("lr-momentum")]
    if lr and lr_names and not any(m.startswith("lr-") for m in metrics):
        ax2 = ax.twinx()
        n_loss = len(plotted)
        for log, label in zip(logs, labels, strict=True):
            for metric in lr_names:
                xs, ys = log.series(metric, x_axis)
                if xs:
                    name = metric if len(logs) == 1 else f"{label}: {metric}"
                    style = _style(len(plotted) - n_loss + 1, len(xs))
                    ax2.plot(xs, ys, label=name, linewidth=1.0, color="gray", **style)
                    plotted.append(name)
        ax2.set_ylabel("learning rate")
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel({"step": "step", "epoch": "epoch", "time": "time (s)"}[x_axis])
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "value")
    ax.grid(True, alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    if ax2 is not None:
        h2, n2 = ax2.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.legend(handles, names, fontsize="small", loc="best")
    fig.tight_layout()
    fig.glmx_series = plotted  # what was drawn, for callers and tests
    if output is not None:
        out = Path(output)
        fmt = fmt or out.suffix.lstrip(".") or "png"
        if fmt not in ("png", "svg", "pdf"):
            raise GlmxError(f"plot format must be png, svg or pdf, not {fmt!r}")
        if not out.suffix:
            out = out.with_suffix(f".{fmt}")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format=fmt, dpi=120)
        plt.close(fig)
    return fig
