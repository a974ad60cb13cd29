"""The run queue: atomic claims, leases and requeueing.

A claim takes the highest-priority, oldest queued run and assigns it to one agent in a single
transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent claimers skip the
locked row instead of waiting for it), a ``BEGIN IMMEDIATE`` transaction on SQLite (one writer at
a time). Every claim increments the run's ``attempt``; an agent's reports carry the attempt
they belong to, and reports for an older attempt are refused, so a run never runs twice at once
even when an agent that lost its lease comes back.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from glmx.platform.models import ACTIVE_STATES, Agent, Run

__all__ = ["add_event", "claim", "extend_leases", "requeue_expired", "run_dict"]


def add_event(run: Run, what: str, **extra: Any) -> None:
    """Appends ``{t, what, ...}`` to the run's event history."""
    run.events = [*(run.events or []), {"t": time.time(), "what": what, **extra}]


def claim(session: Session, agent: Agent, lease_s: float, is_sqlite: bool) -> Run | None:
    """Assigns the next queued run to ``agent`` (in the caller's transaction) or returns None."""
    query = select(Run).where(Run.state == "queued").order_by(Run.priority.desc(), Run.id).limit(1)
    if not is_sqlite:
        query = query.with_for_update(skip_locked=True)
    run = session.scalars(query).first()
    if run is None:
        return None
    now = time.time()
    run.state = "claimed"
    run.agent_id = agent.id
    run.attempt += 1
    run.claimed_at = now
    run.lease_expires = now + lease_s
    run.pending_action = None
    add_event(run, "claimed", agent=agent.id, attempt=run.attempt)
    agent.state = "busy"
    agent.current_run_id = run.id
    agent.last_heartbeat = now
    return run


def requeue_expired(session: Session, now: float | None = None) -> list[int]:
    """Runs whose lease expired go back to the queue (they resume from their last checkpoint);
    a run cancelled meanwhile becomes ``cancelled``. Returns the requeued ids."""
    now = time.time() if now is None else now
    query = select(Run).where(Run.state.in_(ACTIVE_STATES), Run.lease_expires < now)
    requeued = []
    for run in session.scalars(query.with_for_update(skip_locked=True)).all():
        agent = session.get(Agent, run.agent_id) if run.agent_id else None
        if agent is not None and agent.current_run_id == run.id:
            agent.current_run_id = None
            agent.state = "lost"
        if run.pending_action == "cancel":
            run.state, run.finished = "cancelled", now
            add_event(run, "cancelled", reason="lease expired")
            continue
        add_event(run, "preempted", reason="lease expired", agent=run.agent_id)
        run.state, run.agent_id, run.lease_expires, run.pending_action = "queued", None, None, None
        requeued.append(run.id)
    return requeued


def extend_leases(session: Session, lease_s: float) -> None:
    """At server start: give running runs one lease to be heard from again (agents cannot
    heartbeat while the server is down; that is no reason to requeue their runs)."""
    session.execute(
        update(Run).where(Run.state.in_(ACTIVE_STATES)).values(lease_expires=time.time() + lease_s)
    )


def run_dict(run: Run, full: bool = False) -> dict[str, Any]:
    """The API form of a run."""
    out: dict[str, Any] = {
        "id": run.id,
        "project_id": run.project_id,
        "config_id": run.config_id,
        "name": run.name,
        "kind": run.kind,
        "experiment": run.experiment,
        "overrides": list(run.overrides or []),
        "tags": list(run.tags or []),
        "priority": run.priority,
        "state": run.state,
        "external": bool(run.external),
        "agent_id": run.agent_id,
        "attempt": run.attempt,
        "pending_action": run.pending_action,
        "created": run.created,
        "claimed_at": run.claimed_at,
        "started": run.started,
        "finished": run.finished,
        "exit_code": run.exit_code,
        "last_step": run.last_step,
        "final_metrics": dict(run.final_metrics or {}),
    }
    if full:
        out.update(run_dir=run.run_dir, summary=dict(run.summary or {}), events=run.events or [])
    return out
