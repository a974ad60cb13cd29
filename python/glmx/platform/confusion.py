"""Confusion matrices of image runs, from the files a training writes to the platform.

:class:`glmx.models.HFImageClassifier` writes each evaluation's matrix to
``<log_dir>/confusion/<stage>-step<N>.json`` (``{stage, step, classes, matrix}``, rows = true
class). The agent (for its runs) and :class:`glmx.platform.PlatformReporter` (for runs started
elsewhere) watch that folder with :class:`ConfusionWatcher` and post the newest matrix per stage
to ``POST /api/v1/runs/{id}/confusion``; the run page draws it. This module imports neither the
server nor torch: it runs inside agents and training processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["MAX_CLASSES", "ConfusionWatcher", "read_confusion_file"]

#: Most classes a matrix sent to the platform may have (the server answers 422 beyond).
MAX_CLASSES = 256
_MAX_FILE_BYTES = 4 << 20
# the trainer's log dir is the run dir (JSON logger first, the shipped default) or a logger's
# folder one level below it (a TensorBoard-only logger: <run dir>/tensorboard)
_PATTERNS = ("confusion/*.json", "*/confusion/*.json")


def read_confusion_file(path: Path) -> dict[str, Any] | None:
    """``{stage, step, classes, matrix}`` of one matrix file, or None when it is not one (or
    not completely written yet)."""
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    stage, step = doc.get("stage"), doc.get("step")
    classes, matrix = doc.get("classes"), doc.get("matrix")
    if not (isinstance(stage, str) and isinstance(step, int) and not isinstance(step, bool)):
        return None
    if not (isinstance(classes, list) and isinstance(matrix, list)):
        return None
    return {"stage": stage, "step": step, "classes": classes, "matrix": matrix}


class ConfusionWatcher:
    """New confusion matrices under ``root`` (``confusion/`` or ``*/confusion/``).

    :meth:`poll` returns, per stage, the newest matrix written or rewritten since the last
    call (a resumed run that rewrites a step's file sends it again); older steps of a stage
    than one already returned are skipped.

    Args:
        root: the run directory (or the trainer's log directory).
        every_s: :meth:`poll` rescans at most this often unless ``force``.
    """

    def __init__(self, root: Path, every_s: float = 1.0) -> None:
        self.root = Path(root)
        self.every_s = every_s
        self._seen: dict[Path, tuple[int, int]] = {}
        self._sent: dict[str, int] = {}
        self._last = float("-inf")

    def poll(self, force: bool = False) -> list[dict[str, Any]]:
        """The newest new matrix of each stage (sorted by stage name)."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return []
        self._last = now
        latest: dict[str, dict[str, Any]] = {}
        for pattern in _PATTERNS:
            for path in self.root.glob(pattern):
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig = (st.st_mtime_ns, st.st_size)
                if self._seen.get(path) == sig:
                    continue
                # a file still being written is read again once its size or mtime changes
                self._seen[path] = sig
                doc = read_confusion_file(path)
                if doc is None:
                    continue
                stage, step = doc["stage"], doc["step"]
                if step < self._sent.get(stage, -1):
                    continue
                if stage not in latest or step >= latest[stage]["step"]:
                    latest[stage] = doc
        for stage, doc in latest.items():
            self._sent[stage] = doc["step"]
        return [latest[s] for s in sorted(latest)]
