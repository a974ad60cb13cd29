"""``/api/v1/agents``: registration, heartbeats, claims and run state reports."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from glmx.platform.api_common import final_metrics, get_run, state
from glmx.platform.ingest import next_log_seq
from glmx.platform.models import ACTIVE_STATES, FINAL_STATES, Agent, Run
from glmx.platform.queue import add_event, claim, requeue_expired, run_dict
from glmx.platform.schemas import AgentIn, HeartbeatIn, StateIn
from glmx.platform.security import require_token

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


def agent_dict(agent: Agent, lease_s: float) -> dict[str, Any]:
    """The API form of an agent (``lost`` when silent for longer than a lease)."""
    shown = agent.state
    if shown not in ("offline",) and time.time() - agent.last_heartbeat > lease_s:
        shown = "lost"
    return {
        "id": agent.id,
        "name": agent.name,
        "host": agent.host,
        "device": agent.device,
        "gpu_name": agent.gpu_name,
        "gpu_memory_mb": agent.gpu_memory_mb,
        "state": shown,
        "last_heartbeat": agent.last_heartbeat,
        "current_run_id": agent.current_run_id,
    }


def _agent(session: Session, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise HTTPException(404, f"no agent {agent_id}; register again")
    agent.last_heartbeat = time.time()
    return agent


def _owned_run(session: Session, agent: Agent, run_id: int, attempt: int | None) -> Run:
    run = get_run(session, run_id)
    if run.agent_id != agent.id or (attempt is not None and attempt != run.attempt):
        raise HTTPException(409, f"run {run_id} is no longer assigned to agent {agent.id}")
    if run.state not in ACTIVE_STATES:
        raise HTTPException(409, f"run {run_id} is {run.state}")
    return run


def finish_run(session: Session, run: Run, body: StateIn) -> None:
    """Records a final state, the exit summary and the final/best metrics."""
    now = time.time()
    run.state = body.state
    run.finished = now
    run.exit_code = body.exit_code
    run.lease_expires = None
    metrics = final_metrics(session, run.id)
    run.final_metrics = metrics
    run.summary = {
        **(run.summary or {}),
        **body.summary,
        "duration_s": now - (run.started or run.claimed_at or now),
        "last_step": run.last_step,
    }
    add_event(run, body.state, exit_code=body.exit_code)
    if run.agent_id is not None:
        agent = session.get(Agent, run.agent_id)
        if agent is not None and agent.current_run_id == run.id:
            agent.current_run_id, agent.state = None, "idle"


@router.post("", status_code=201, dependencies=[Depends(require_token)])
def register(body: AgentIn, request: Request) -> dict[str, Any]:
    """Registers an agent; the answer carries its id and the lease settings."""
    st = state(request)
    now = time.time()
    with st.db.write() as session:
        agent = Agent(
            name=body.name or f"{body.host}:{body.device}",
            host=body.host,
            device=body.device,
            gpu_name=body.gpu_name,
            gpu_memory_mb=body.gpu_memory_mb,
            state="idle",
            last_heartbeat=now,
            created=now,
        )
        session.add(agent)
        session.flush()
        out = agent_dict(agent, st.settings.lease_s)
    out["lease_s"] = st.settings.lease_s
    return out


@router.get("")
def list_agents(
    request: Request, include_offline: bool = Query(False, alias="all")
) -> dict[str, Any]:
    """Agents (``all``: also offline ones)."""
    st = state(request)
    with st.db.read() as session:
        query = select(Agent).order_by(Agent.id)
        if not include_offline:
            query = query.where(Agent.state != "offline")
        agents = session.scalars(query).all()
        return {"agents": [agent_dict(a, st.settings.lease_s) for a in agents]}


@router.post("/{agent_id}/heartbeat", dependencies=[Depends(require_token)])
def heartbeat(agent_id: int, body: HeartbeatIn, request: Request) -> dict[str, Any]:
    """Extends the agent's lease on its run; answers with a pending action (save, stop,
    cancel) or ``valid: false`` when the run was taken away (the agent then kills it)."""
    st = state(request)
    with st.db.write() as session:
        agent = _agent(session, agent_id)
        if body.run_id is None:
            if agent.state != "busy":
                agent.state = "idle"
            return {"ok": True}
        try:
            run = _owned_run(session, agent, body.run_id, body.attempt)
        except HTTPException as err:
            return {"ok": True, "valid": False, "reason": err.detail}
        run.lease_expires = time.time() + st.settings.lease_s
        if body.step is not None:
            run.last_step = max(run.last_step or 0, body.step)
        action = run.pending_action
        if action and action != "cancel":
            run.pending_action = None
        return {"ok": True, "valid": True, "action": action}


@router.post("/{agent_id}/claim", dependencies=[Depends(require_token)])
def claim_run(agent_id: int, request: Request) -> Any:
    """Assigns the next queued run to this agent (204 when the queue is empty)."""
    st = state(request)
    with st.db.write() as session:
        requeue_expired(session)
    with st.db.write() as session:
        agent = _agent(session, agent_id)
        if agent.current_run_id is not None:
            current = session.get(Run, agent.current_run_id)
            if current is not None and current.state in ACTIVE_STATES:
                raise HTTPException(409, f"agent {agent_id} still holds run {current.id}")
        run = claim(session, agent, st.settings.lease_s, st.db.is_sqlite)
        if run is None:
            agent.state = "idle"
            return Response(status_code=204)
        # where this attempt's first log line will land (the agent's batches say where they
        # expect to start, so a batch re-sent after a lost reply is not stored twice)
        return {**run_dict(run, full=True), "next_log_seq": next_log_seq(session, run.id)}


@router.post("/{agent_id}/runs/{run_id}/state", dependencies=[Depends(require_token)])
def report_state(agent_id: int, run_id: int, body: StateIn, request: Request) -> dict[str, Any]:
    """``running`` when the process started; a final state with exit code and summary."""
    st = state(request)
    with st.db.write() as session:
        agent = _agent(session, agent_id)
        run = _owned_run(session, agent, run_id, body.attempt)
        if body.state == "queued":  # a stopping agent hands the run back (it checkpointed)
            run.state, run.agent_id, run.lease_expires, run.pending_action = (
                "queued",
                None,
                None,
                None,
            )
            add_event(run, "returned", agent=agent.id, attempt=run.attempt)
            agent.current_run_id, agent.state = None, "idle"
        elif body.state == "running":
            run.state = "running"
            run.started = run.started or time.time()
            run.lease_expires = time.time() + st.settings.lease_s
            add_event(run, "running", agent=agent.id, attempt=run.attempt)
        else:
            if body.state not in FINAL_STATES:
                raise HTTPException(422, f"unknown state {body.state}")
            finish_run(session, run, body)
        return run_dict(run)


@router.post("/{agent_id}/offline", dependencies=[Depends(require_token)])
def offline(agent_id: int, request: Request) -> dict[str, Any]:
    """An agent shutting down cleanly."""
    with state(request).db.write() as session:
        agent = _agent(session, agent_id)
        agent.state = "offline"
        return {"ok": True}
