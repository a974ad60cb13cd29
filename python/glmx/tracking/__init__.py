"""Experiment tracking, offline first: per-run append-only records and a SQLite index.

Each run keeps ``<run_dir>/glmx-run/`` (events, config, git diff, heartbeat), written only by
the run itself (:class:`ExperimentTracker`, a trainer callback) and by ``glmx slurm submit``
before the job starts. :class:`ExperimentIndex` builds the queryable index from those files.
"""

from __future__ import annotations

import importlib
from typing import Any

from glmx.tracking.index import ExperimentIndex, find_run_dirs
from glmx.tracking.record import STATUSES, RunRecord, metric_mode, read_metrics

__all__ = [
    "STATUSES",
    "ExperimentIndex",
    "ExperimentTracker",
    "RunRecord",
    "find_run_dirs",
    "metric_mode",
    "read_metrics",
]


def __getattr__(name: str) -> Any:
    if name == "ExperimentTracker":  # imports torch (through glmx.trainer)
        value = importlib.import_module("glmx.tracking.callback").ExperimentTracker
        globals()[name] = value
        return value
    raise AttributeError(f"module 'glmx.tracking' has no attribute {name!r}")
