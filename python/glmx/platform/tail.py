"""Reading files that another process is writing: complete lines only, restarts on rewrite."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["FileTail", "records_to_points"]

_META = ("timestamp", "global_step", "epoch", "step")


class FileTail:
    """New complete lines of ``path`` since the last call. A file replaced or truncated (a
    resumed run rewrites ``trainer_logs.json`` up to its checkpoint) is read again from the
    start; a last line without its newline waits for the next call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""

    def read(self, max_bytes: int = 4 << 20) -> list[str]:
        """New lines (at most about ``max_bytes`` per call)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self._inode or st.st_size < self._offset:
            self._inode, self._offset, self._partial = st.st_ino, 0, b""
        if st.st_size == self._offset:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(max_bytes)
        except OSError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]


def records_to_points(lines: list[str]) -> list[dict[str, Any]]:
    """``trainer_logs.json`` records -> metric points ``{key, step, value, epoch, t}``
    (non-numeric fields and records cut by a crash are skipped)."""
    points = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or "global_step" not in rec:
            continue
        step, epoch, t = rec.get("global_step"), rec.get("epoch"), rec.get("timestamp")
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        for key, value in rec.items():
            if key in _META or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value != value or value in (float("inf"), float("-inf")):
                continue  # NaN/inf are not JSON; the log line shows them
            points.append(
                {
                    "key": key,
                    "step": int(step),
                    "value": float(value),
                    "epoch": int(epoch) if isinstance(epoch, int) else None,
                    "t": t,
                }
            )
    return points
