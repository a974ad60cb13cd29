"""The experiment index: a SQLite file built from the per-run records.

Jobs never write to SQLite (SQLite locking is unreliable on NFS/Lustre); they only append to
their own run files. The indexer copies the current index, updates the runs whose files
changed, and atomically renames the new file into place, so concurrent indexers and readers
on a shared filesystem always see a complete index, and a lost or corrupt index is rebuilt from
the runs (with a warning). Event files are read defensively: only regular files up to
:data:`MAX_EVENTS_BYTES` (a FIFO cannot block the reader), and a malformed event line is
skipped with a warning naming ``file:line``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from glmx.errors import GlmxError
from glmx.tracking.record import (
    EVENTS_FILE,
    HEARTBEAT_FILE,
    MAX_EVENTS_BYTES,
    RECORD_DIR,
    RunRecord,
    fold,
    read_regular,
)

_NOWHERE = Path("/nonexistent/glmx-event-check")

INDEX_NAME = ".glmx-index.sqlite"
COLUMNS = (
    "id",
    "name",
    "status",
    "run_dir",
    "created",
    "started",
    "ended",
    "job_id",
    "array_job_id",
    "array_task_id",
    "hostname",
    "gpu",
    "git_sha",
    "git_dirty",
    "seed",
    "restarts",
    "preemptions",
    "slurm_state",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs ("
    + ", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'id' else ''}" for c in COLUMNS)
    + ", signature TEXT, summary TEXT)"
)
_SKIP_DIRS = {
    "checkpoints",
    "tensorboard",
    RECORD_DIR,
    "__pycache__",
    "node_modules",
    "target",
    "venv",
}


def find_run_dirs(roots: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Run directories (those holding ``glmx-run/events.jsonl``) under ``roots``."""
    for root in roots:
        for dirpath, dirnames, _ in os.walk(root):
            if os.path.exists(os.path.join(dirpath, RECORD_DIR, EVENTS_FILE)):
                yield Path(dirpath).resolve()
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]


def read_events(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events of the run in ``run_dir``; a line cut by a crash is skipped silently, a
    malformed event (bad JSON, wrong field types) with a warning naming ``file:line``."""
    path = Path(run_dir) / RECORD_DIR / EVENTS_FILE
    data = read_regular(path, MAX_EVENTS_BYTES)
    if data is None:
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as err:
            if number < len(lines) - 1 or data.endswith(b"\n"):
                warnings.warn(f"{path}:{number}: skipping malformed event ({err})", stacklevel=2)
            continue
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            warnings.warn(f"{path}:{number}: skipping malformed event (no 'event')", stacklevel=2)
            continue
        try:
            fold([event], _NOWHERE, None)
        except Exception as err:  # any field of the wrong type
            warnings.warn(
                f"{path}:{number}: skipping malformed event ({type(err).__name__}: {err})",
                stacklevel=2,
            )
            continue
        out.append(event)
    return out


def run_summary(run_dir: str | os.PathLike[str], now: float | None = None) -> dict[str, Any]:
    """What :meth:`RunRecord.summary` returns, read defensively (see :func:`read_events`)."""
    record = RunRecord(run_dir)
    raw = read_regular(record.dir / HEARTBEAT_FILE, 4096)
    try:
        heartbeat = float(raw.decode().strip()) if raw else None
    except ValueError:
        heartbeat = None
    logs = record.run_dir / "trainer_logs.json"
    if logs.exists() and not logs.is_file():
        warnings.warn(f"{logs}: not a regular file; metrics skipped", stacklevel=2)
        summary = fold(read_events(run_dir), _NOWHERE, heartbeat, now)
        if summary["name"] == _NOWHERE.name:
            summary["name"] = record.run_dir.name
        summary["run_dir"] = str(record.run_dir)
        return summary
    return fold(read_events(run_dir), record.run_dir, heartbeat, now)


def _signature(run_dir: Path) -> str:
    parts = []
    for rel in (
        f"{RECORD_DIR}/{EVENTS_FILE}",
        f"{RECORD_DIR}/{HEARTBEAT_FILE}",
        "trainer_logs.json",
    ):
        try:
            st = (run_dir / rel).stat()
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


class ExperimentIndex:
    """Lists, finds and exports runs under ``roots`` through a SQLite index.

    Args:
        roots: directories searched for runs (e.g. ``outputs`` and ``multirun``).
        path: the index file; default ``<roots[0]>/.glmx-index.sqlite``.
    """

    def __init__(
        self, roots: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str] | None = None
    ) -> None:
        self.roots = [Path(r) for r in roots]
        if not self.roots:
            raise GlmxError("ExperimentIndex needs at least one root directory")
        self.path = Path(path) if path is not None else self.roots[0] / INDEX_NAME

    def refresh(self, slurm_states: dict[str, dict[str, Any]] | None = None) -> int:
        """Re-read changed runs and replace the index atomically; returns the number of runs.

        ``slurm_states`` maps run ids to ``{"slurm_state", "status", ...}`` from a harvest; they
        overlay the file-derived status and are kept until the next harvest.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            if self.path.is_file():
                shutil.copyfile(self.path, tmp)
            try:
                count = self._update(tmp, slurm_states or {})
            except (sqlite3.DatabaseError, ValueError, TypeError) as err:
                # A corrupt (or foreign) index: it only caches the run files, so rebuild it.
                warnings.warn(
                    f"experiment index {self.path} is unreadable ({err}); rebuilding it from "
                    "the run records",
                    stacklevel=2,
                )
                tmp.unlink(missing_ok=True)
                count = self._update(tmp, slurm_states or {})
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return count

    def _update(self, db_path: Path, slurm_states: dict[str, dict[str, Any]]) -> int:
        con = sqlite3.connect(db_path)
        try:
            con.execute(_SCHEMA)
            old = {
                row[0]: (row[1], row[2])
                for row in con.execute("SELECT run_dir, signature, summary FROM runs")
                if isinstance(row[2], str)
            }
            seen = set()
            now = time.time()
            for run_dir in find_run_dirs(self.roots):
                key = str(run_dir)
                seen.add(key)
                sig = _signature(run_dir)
                prev = old.get(key)
                # Unchanged files give the same summary, except that a running run can go dead.
                if (
                    prev
                    and prev[0] == sig
                    and json.loads(prev[1]).get("status") != "running"
                    and not slurm_states
                ):
                    continue
                summary = run_summary(run_dir, now=now)
                if summary["id"] is None:
                    continue
                harvested = slurm_states.get(summary["id"])
                if harvested is None and prev is not None:
                    harvested = json.loads(prev[1]).get("harvest")
                if harvested:
                    summary["harvest"] = harvested
                    summary["slurm_state"] = harvested.get("slurm_state")
                    if harvested.get("status") and summary["status"] in (
                        "queued",
                        "running",
                        "preempted",
                        "created",
                    ):
                        summary["status"] = harvested["status"]
                    summary["harvested_metrics"] = harvested.get("metrics") or {}
                con.execute("DELETE FROM runs WHERE run_dir = ?", (key,))
                values = [summary.get(c) for c in COLUMNS]
                con.execute(
                    f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}, signature, summary) "
                    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})",
                    [*values, sig, json.dumps(summary, default=str)],
                )
            for key in set(old) - seen:
                con.execute("DELETE FROM runs WHERE run_dir = ?", (key,))
            con.commit()
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            con.close()

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            self.refresh()
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        return con

    def _query(self, status: str | None) -> list[dict[str, Any]]:
        con = self._connect()
        try:
            query = "SELECT summary FROM runs"
            args: tuple[Any, ...] = ()
            if status:
                query += " WHERE status = ?"
                args = (status,)
            return [json.loads(r[0]) for r in con.execute(query + " ORDER BY created DESC", args)]
        finally:
            con.close()

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Summaries of all indexed runs, newest first (optionally only one ``status``). A
        corrupt index is rebuilt from the run records."""
        try:
            return self._query(status)
        except (sqlite3.DatabaseError, ValueError, TypeError):
            self.refresh()
            return self._query(status)

    def get(self, ref: str) -> dict[str, Any]:
        """One run by id, unique id prefix, name or run directory; raises with the candidates."""
        path = Path(ref)
        if (path / RECORD_DIR / EVENTS_FILE).exists():
            return run_summary(path)
        runs = self.runs()
        exact = [r for r in runs if ref in (r["id"], r["name"], r["run_dir"])]
        matches = exact or [r for r in runs if str(r["id"]).startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(str(r["id"]) for r in runs[:10]) or "none"
            raise GlmxError(
                f"no run matches {ref!r} under {', '.join(map(str, self.roots))} (runs: {known})"
            )
        raise GlmxError(
            f"{ref!r} matches {len(matches)} runs: {', '.join(str(r['id']) for r in matches[:10])}"
        )
