"""Writing metric points and log lines (the hot path of the server)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from glmx.platform.db import Database
from glmx.platform.models import ACTIVE_STATES, LogLine, Metric, Run

__all__ = ["ingest_logs", "ingest_metrics", "next_log_seq"]


def _live_run(session: Session, run_id: int, attempt: int | None) -> Run:
    # Row lock (PostgreSQL) serializes writers of one run: log sequence numbers stay dense.
    run = session.scalars(select(Run).where(Run.id == run_id).with_for_update()).first()
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    if run.state not in ACTIVE_STATES:
        raise HTTPException(409, f"run {run_id} is {run.state}; it takes no more data")
    if attempt is not None and attempt != run.attempt:
        raise HTTPException(
            409, f"run {run_id} is at attempt {run.attempt}, not {attempt} (requeued elsewhere)"
        )
    return run


def _insert(session: Session) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert


def ingest_metrics(db: Database, run_id: int, attempt: int | None, points: list[dict]) -> int:
    """Upserts points on (run, key, step): a resumed run re-reports steps after its checkpoint."""
    now = time.time()
    # one value per (key, step) in a batch (PostgreSQL refuses to upsert a row twice)
    rows = {
        (p["key"], int(p["step"])): {
            "run_id": run_id,
            "key": p["key"],
            "step": int(p["step"]),
            "value": float(p["value"]),
            "epoch": p.get("epoch"),
            "timestamp": float(p.get("t") or now),
        }
        for p in points
    }
    with db.write() as session:
        run = _live_run(session, run_id, attempt)
        if not rows:
            return 0
        insert = _insert(session)
        stmt = insert(Metric)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "key", "step"],
            set_={
                "value": stmt.excluded.value,
                "epoch": stmt.excluded.epoch,
                "timestamp": stmt.excluded.timestamp,
            },
        )
        session.execute(stmt, list(rows.values()))
        run.last_step = max(run.last_step or 0, max(step for _, step in rows))
        if run.state == "claimed":
            run.state = "running"
    return len(rows)


def ingest_logs(
    db: Database,
    run_id: int,
    attempt: int | None,
    lines: list[str],
    first_seq: int | None = None,
) -> tuple[int, int]:
    """Appends lines with consecutive sequence numbers; returns ``(stored, next_seq)``.

    With ``first_seq`` (where the sender expects its first line to land), lines already stored
    from that position on are skipped: an agent that re-sends a batch whose reply it never got
    (the server died after the commit) does not duplicate it."""
    with db.write() as session:
        _live_run(session, run_id, attempt)
        nxt = next_log_seq(session, run_id)
        if first_seq is not None and first_seq < nxt:
            lines = lines[nxt - first_seq :]
        session.add_all(
            LogLine(run_id=run_id, seq=nxt + i, line=line[:10_000]) for i, line in enumerate(lines)
        )
    return len(lines), nxt + len(lines)


def next_log_seq(session: Session, run_id: int) -> int:
    """The sequence number the run's next log line gets."""
    last = session.scalar(select(func.max(LogLine.seq)).where(LogLine.run_id == run_id))
    return 0 if last is None else int(last) + 1
