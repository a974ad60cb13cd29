"""Training logs (``trainer_logs.json``): read, summarise and plot.

>>> from glmx import logs
>>> log = logs.TrainingLog.from_file("outputs/run1")          # a file or a run directory
>>> logs.summary(log)["best_loss"]
>>> logs.plot(["outputs/run1", "outputs/run2"], metrics=["train/loss"], output="loss.png")

A log is one JSON object per line ``{timestamp, global_step, epoch, <metrics>...}``. Readers
tolerate a live or crashed run: a line cut mid-record is skipped and counted, never an error.
Nothing here imports torch; :func:`plot` imports matplotlib on first use.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmx.errors import GlmxError

__all__ = ["LOG_NAME", "TrainingLog", "find_logs", "format_summary", "plot", "summary"]

LOG_NAME = "trainer_logs.json"
_RESERVED = ("timestamp", "global_step", "epoch")
# directories never worth descending into when looking for logs
_SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", "checkpoints", ".hydra", "target"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainingLog:
    """The records of one ``trainer_logs.json``; ``skipped`` counts unreadable lines."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainingLog:
        """Reads a log file, or the ``trainer_logs.json`` in (or below) run directory ``path``."""
        p = Path(path)
        if p.is_dir():
            found = find_logs(p)
            if not found:
                raise GlmxError(f"no {LOG_NAME} in or below {p}")
            p = found[0]
        if not p.is_file():
            raise GlmxError(f"training log {p} does not exist")
        log = cls(p)
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.skipped += 1  # cut by a live writer or a crash
                    continue
                if isinstance(record, dict):
                    log.records.append(record)
                else:
                    log.skipped += 1
        return log

    @property
    def name(self) -> str:
        """A label: the run directory relative to the working directory when possible."""
        run = self.path.parent
        try:
            return str(run.resolve().relative_to(Path.cwd().resolve())) or "."
        except ValueError:
            return str(run)

    @property
    def metrics(self) -> list[str]:
        """Metric names in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.records:
            for k, v in r.items():
                if k not in _RESERVED and _is_number(v):
                    seen.setdefault(k, None)
        return list(seen)

    def series(self, metric: str, x_axis: str = "step") -> tuple[list[float], list[float]]:
        """``(x, y)`` of the finite values of ``metric``; ``x_axis`` is ``step``, ``epoch`` or
        ``time`` (seconds since the first record)."""
        key = {"step": "global_step", "epoch": "epoch", "time": "timestamp"}.get(x_axis)
        if key is None:
            raise GlmxError(f"x axis must be step, epoch or time, not {x_axis!r}")
        t0 = next(
            (float(r["timestamp"]) for r in self.records if _is_number(r.get("timestamp"))), 0.0
        )
        xs, ys = [], []
        for r in self.records:
            y, x = r.get(metric), r.get(key)
            if _is_number(y) and _is_number(x):
                xs.append(float(x) - t0 if x_axis == "time" else float(x))
                ys.append(float(y))
        return xs, ys

    def loss_metric(self) -> str | None:
        """The training loss's name (``train/loss``, ``loss`` or the first ``*loss*``)."""
        names = self.metrics
        for candidate in ("train/loss", "loss", "train_loss"):
            if candidate in names:
                return candidate
        return next((n for n in names if "loss" in n and not n.startswith("val")), None)


def find_logs(root: str | os.PathLike[str] = ".", max_depth: int = 8) -> list[Path]:
    """Every ``trainer_logs.json`` in or below ``root``, newest first."""
    root = Path(root)
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and depth < max_depth]
        if LOG_NAME in filenames:
            found.append(Path(dirpath) / LOG_NAME)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _as_log(log: TrainingLog | str | os.PathLike[str]) -> TrainingLog:
    return log if isinstance(log, TrainingLog) else TrainingLog.from_file(log)


def summary(log: TrainingLog | str | os.PathLike[str]) -> dict[str, Any]:
    """Best loss and its step, final metrics, duration and throughput of one log."""
    log = _as_log(log)
    recs = log.records
    steps = [r["global_step"] for r in recs if _is_number(r.get("global_step"))]
    times = [float(r["timestamp"]) for r in recs if _is_number(r.get("timestamp"))]
    final: dict[str, float] = {}
    for r in recs:
        final.update({k: float(v) for k, v in r.items() if k not in _RESERVED and _is_number(v)})
    out: dict[str, Any] = {
        "path": str(log.path),
        "name": log.name,
        "records": len(recs),
        "skipped_lines": log.skipped,
        "first_step": min(steps) if steps else None,
        "last_step": max(steps) if steps else None,
        "last_epoch": max((r["epoch"] for r in recs if _is_number(r.get("epoch"))), default=None),
        "duration_s": (max(times) - min(times)) if times else None,
    }
    for label, metric in (
        ("loss", log.loss_metric()),
        ("val_loss", "val/loss" if "val/loss" in final else None),
    ):
        xs, ys = log.series(metric) if metric else ([], [])
        best = min(range(len(ys)), key=ys.__getitem__) if ys else None
        out[f"{label}_metric"] = metric
        out[f"best_{label}"] = ys[best] if best is not None else None
        out[f"best_{label}_step"] = int(xs[best]) if best is not None else None
    for name in ("perf/tokens_per_sec", "perf/samples_per_sec"):
        _, ys = log.series(name)
        out[name.split("/")[1]] = sum(ys) / len(ys) if ys else None
    out["final"] = final
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def format_summary(s: dict[str, Any], fmt: str = "text") -> str:
    """Renders a :func:`summary` as ``text``, ``json``, ``md`` (a table row block) or
    ``one-line``."""
    if fmt == "json":
        return json.dumps(s, indent=1)
    if fmt == "one-line":
        return (
            f"{s['name']}: steps {_fmt(s['first_step'])}-{_fmt(s['last_step'])} "
            f"best {s['loss_metric'] or 'loss'} {_fmt(s['best_loss'])} @ {_fmt(s['best_loss_step'])} "
            f"val {_fmt(s['best_val_loss'])} tok/s {_fmt(s['tokens_per_sec'])} "
            f"time {_fmt(s['duration_s'])} s"
        )
    rows = [
        ("run", s["name"]),
        ("log", s["path"]),
        ("records", f"{s['records']} ({s['skipped_lines']} unreadable lines skipped)"),
        (
            "steps",
            f"{_fmt(s['first_step'])} - {_fmt(s['last_step'])}, last epoch {_fmt(s['last_epoch'])}",
        ),
        ("duration", f"{_fmt(s['duration_s'])} s"),
        (
            f"best {s['loss_metric'] or 'loss'}",
            f"{_fmt(s['best_loss'])} at step {_fmt(s['best_loss_step'])}",
        ),
        ("best val/loss", f"{_fmt(s['best_val_loss'])} at step {_fmt(s['best_val_loss_step'])}"),
        ("tokens/s (mean)", _fmt(s["tokens_per_sec"])),
        ("samples/s (mean)", _fmt(s["samples_per_sec"])),
    ] + [(f"final {k}", _fmt(v)) for k, v in s["final"].items()]
    if fmt == "md":
        lines = [f"### {s['name']}", "", "| field | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in rows]
        return "\n".join(lines)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def plot(*args: Any, **kwargs: Any) -> Any:
    """Plots logs; see :func:`glmx.logs.plotting.plot_logs` (returns the matplotlib Figure)."""
    from glmx.logs.plotting import plot_logs

    return plot_logs(*args, **kwargs)
