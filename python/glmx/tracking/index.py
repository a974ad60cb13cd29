"""The experiment index: a SQLite file built from the per-run records.

Jobs never write to SQLite (SQLite locking is unreliable on NFS/Lustre); they only append to
their own run files. The indexer copies the current index, updates the runs whose files
changed, and atomically renames the new file into place, so concurrent indexers and readers
on a shared filesystem always see a complete index, and a lost index is rebuilt from the runs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from glmx.errors import GlmxError
from glmx.tracking.record import EVENTS_FILE, HEARTBEAT_FILE, RECORD_DIR, RunRecord

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
        if self.path.exists():
            shutil.copyfile(self.path, tmp)
        try:
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
                summary = RunRecord(run_dir).summary(now=now)
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
        if not self.path.exists():
            self.refresh()
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        return con

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Summaries of all indexed runs, newest first (optionally only one ``status``)."""
        con = self._connect()
        try:
            query = "SELECT summary FROM runs"
            args: tuple[Any, ...] = ()
            if status:
                query += " WHERE status = ?"
                args = (status,)
            rows = [json.loads(r[0]) for r in con.execute(query + " ORDER BY created DESC", args)]
        finally:
            con.close()
        return rows

    def get(self, ref: str) -> dict[str, Any]:
        """One run by id, unique id prefix, name or run directory; raises with the candidates."""
        path = Path(ref)
        if (path / RECORD_DIR / EVENTS_FILE).exists():
            return RunRecord(path).summary()
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
