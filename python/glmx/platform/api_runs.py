"""``/api/v1/runs``: enqueue, list, show, actions, metrics, logs, checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import func, or_, select

from glmx.platform.api_common import get_or_create_project, get_run, state
from glmx.platform.ingest import ingest_logs, ingest_metrics
from glmx.platform.models import (
    FINAL_STATES,
    RUN_STATES,
    ConfigRow,
    LogLine,
    Metric,
    Project,
    Run,
)
from glmx.platform.queue import add_event, run_dict
from glmx.platform.schemas import ExternalRunIn, LogsIn, MetricsIn, RunIn, StateIn
from glmx.platform.security import confine, require_token
from glmx.platform.validate import check_experiment, check_overrides, compose_check

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
ACTIONS = ("save", "stop", "cancel")


@router.post("", status_code=201, dependencies=[Depends(require_token)])
def create_run(body: RunIn, request: Request) -> dict[str, Any]:
    """Enqueues a run (a stored config, or an experiment plus overrides, validated first)."""
    st = state(request)
    roots = [st.settings.data_dir, st.settings.runs_dir]
    with st.db.read() as session:
        if body.config_id is not None:
            cfg = session.get(ConfigRow, body.config_id)
            if cfg is None:
                raise HTTPException(404, f"no config {body.config_id}")
            experiment, overrides = cfg.experiment, [*cfg.overrides, *body.overrides]
        else:
            experiment, overrides = body.experiment or "", list(body.overrides)
    if body.kind == "train":
        check_experiment(experiment)
    check_overrides(overrides, body.kind, roots)
    if body.kind == "train":
        compose_check(st.settings.configs_dir, experiment, overrides)
    with st.db.write() as session:
        project = get_or_create_project(session, body.project)
        run = Run(
            project_id=project.id,
            config_id=body.config_id,
            name=body.name or experiment or body.kind,
            kind=body.kind,
            experiment=experiment,
            overrides=overrides,
            tags=list(body.tags),
            priority=body.priority,
            state="queued",
            created=time.time(),
            attempt=0,
            last_step=0,
            external=0,
            summary={},
            final_metrics={},
            events=[],
        )
        session.add(run)
        session.flush()
        run.run_dir = str(st.settings.runs_dir / f"run-{run.id}")
        add_event(run, "queued")
        return run_dict(run, full=True)


@router.post("/external", status_code=201, dependencies=[Depends(require_token)])
def create_external(body: ExternalRunIn, request: Request) -> dict[str, Any]:
    """Registers a run started outside the platform (it reports its own metrics and state)."""
    st = state(request)
    with st.db.write() as session:
        project = get_or_create_project(session, body.project)
        now = time.time()
        run = Run(
            project_id=project.id,
            name=body.name or body.experiment or "external",
            kind="train",
            experiment=body.experiment,
            overrides=list(body.overrides),
            tags=list(body.tags),
            priority=0,
            state="running",
            external=1,
            attempt=1,
            created=now,
            started=now,
            last_step=0,
            run_dir=body.run_dir,
            summary={"host": body.host},
            final_metrics={},
            events=[{"t": now, "what": "external start", "host": body.host}],
        )
        session.add(run)
        session.flush()
        return run_dict(run, full=True)


@router.get("")
def list_runs(
    request: Request,
    states: str | None = Query(None, alias="state"),
    project: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
    order: str = "-id",
) -> dict[str, Any]:
    """Runs, newest first by default; ``state`` (comma list), ``tag``, ``q`` (name/experiment
    substring), ``order`` (a field, ``-`` for descending), ``limit``/``offset`` paging."""
    st = state(request)
    query = select(Run)
    if states:
        wanted = [s for s in states.split(",") if s]
        bad = [s for s in wanted if s not in RUN_STATES]
        if bad:
            raise HTTPException(422, f"unknown state {bad[0]!r}; states: {', '.join(RUN_STATES)}")
        query = query.where(Run.state.in_(wanted))
    if q:
        like = f"%{q}%"
        query = query.where(or_(Run.name.like(like), Run.experiment.like(like)))
    field = order.lstrip("-")
    if field not in ("id", "created", "started", "finished", "name", "state", "priority"):
        raise HTTPException(422, f"cannot order by '{field}'")
    col = getattr(Run, field)
    query = query.order_by(col.desc() if order.startswith("-") else col, Run.id.desc())
    limit = max(1, min(int(limit), 1000))
    with st.db.read() as session:
        if project:
            proj = session.scalars(select(Project).where(Project.name == project)).first()
            if proj is None:
                return {"total": 0, "runs": []}
            query = query.where(Run.project_id == proj.id)
        if tag:  # JSON list membership, portable across SQLite and PostgreSQL: filtered here
            tagged = [r for r in session.scalars(query).all() if tag in (r.tags or [])]
            total = len(tagged)
            runs = tagged[offset : offset + limit]
        else:
            total = session.scalar(select(func.count()).select_from(query.subquery()))
            runs = session.scalars(query.limit(limit).offset(max(0, offset))).all()
        return {"total": total, "runs": [run_dict(r) for r in runs]}


@router.get("/{run_id}")
def show_run(run_id: int, request: Request) -> dict[str, Any]:
    """One run with its run directory, summary and event history."""
    with state(request).db.read() as session:
        return run_dict(get_run(session, run_id), full=True)


@router.post("/{run_id}/actions/{action}", dependencies=[Depends(require_token)])
def run_action(run_id: int, action: str, request: Request) -> dict[str, Any]:
    """``save`` (checkpoint now), ``stop`` (save, then stop: state ``preempted``), ``cancel``
    (a queued run at once; a running one is aborted by its agent), ``requeue`` (a stopped or
    failed run goes back to the queue and resumes from its checkpoint)."""
    if action not in (*ACTIONS, "requeue"):
        raise HTTPException(422, f"unknown action '{action}'; actions: save, stop, cancel, requeue")
    with state(request).db.write() as session:
        run = get_run(session, run_id)
        if action == "requeue":
            if run.state not in ("preempted", "failed", "cancelled") or run.external:
                raise HTTPException(409, f"run {run_id} is {run.state}; only stopped runs requeue")
            run.state, run.finished, run.agent_id = "queued", None, None
        elif run.state == "queued" and action == "cancel":
            run.state, run.finished = "cancelled", time.time()
        elif run.state in ("claimed", "running") and not run.external:
            run.pending_action = action
        else:
            raise HTTPException(409, f"run {run_id} is {run.state}; '{action}' needs a live run")
        add_event(run, f"action {action}")
        return run_dict(run)


@router.post("/{run_id}/metrics", dependencies=[Depends(require_token)])
def post_metrics(run_id: int, body: MetricsIn, request: Request) -> dict[str, Any]:
    """Ingests metric points (idempotent per run, key and step)."""
    n = ingest_metrics(
        state(request).db, run_id, body.attempt, [p.model_dump() for p in body.points]
    )
    return {"accepted": n}


@router.get("/{run_id}/metrics/keys")
def metric_keys(run_id: int, request: Request) -> dict[str, Any]:
    """The metric names a run has logged."""
    with state(request).db.read() as session:
        get_run(session, run_id)
        keys = session.scalars(
            select(Metric.key).where(Metric.run_id == run_id).distinct().order_by(Metric.key)
        ).all()
        return {"keys": list(keys)}


@router.get("/{run_id}/metrics")
def get_metrics(
    run_id: int,
    request: Request,
    key: str | None = None,
    after_step: int = -1,
    limit: int = 10_000,
    max_points: int | None = None,
) -> dict[str, Any]:
    """Points ``{key, step, value, epoch, t}`` in step order, paged by ``after_step`` and
    ``limit``; ``max_points`` downsamples each key evenly (first and last point kept)."""
    limit = max(1, min(int(limit), 100_000))
    with state(request).db.read() as session:
        get_run(session, run_id)
        query = select(Metric).where(Metric.run_id == run_id, Metric.step > after_step)
        if key:
            query = query.where(Metric.key == key)
        rows = session.scalars(query.order_by(Metric.step, Metric.key).limit(limit)).all()
        points = [
            {"key": m.key, "step": m.step, "value": m.value, "epoch": m.epoch, "t": m.timestamp}
            for m in rows
        ]
    if max_points and max_points > 0:
        points = _downsample(points, int(max_points))
    next_after = points[-1]["step"] if len(rows) == limit and points else None
    return {"points": points, "next_after_step": next_after}


def _downsample(points: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        by_key.setdefault(p["key"], []).append(p)
    out = []
    for series in by_key.values():
        if len(series) > n:
            stride = (len(series) - 1) / max(1, n - 1)
            series = [series[round(i * stride)] for i in range(n)]
        out.extend(series)
    return sorted(out, key=lambda p: (p["step"], p["key"]))


@router.post("/{run_id}/logs", dependencies=[Depends(require_token)])
def post_logs(run_id: int, body: LogsIn, request: Request) -> dict[str, Any]:
    """Appends log lines (``first_seq``: a re-sent batch is stored once); answers how many were
    stored and the sequence number the next line will get."""
    stored, nxt = ingest_logs(state(request).db, run_id, body.attempt, body.lines, body.first_seq)
    return {"accepted": stored, "next_seq": nxt}


@router.get("/{run_id}/logs")
def get_logs(run_id: int, request: Request, tail: int = 200, after: int | None = None) -> dict:
    """The last ``tail`` lines, or the lines after sequence number ``after``."""
    tail = max(1, min(int(tail), 10_000))
    with state(request).db.read() as session:
        get_run(session, run_id)
        query = select(LogLine).where(LogLine.run_id == run_id)
        if after is not None:
            rows = session.scalars(
                query.where(LogLine.seq > after).order_by(LogLine.seq).limit(tail)
            ).all()
        else:
            rows = session.scalars(query.order_by(LogLine.seq.desc()).limit(tail)).all()[::-1]
        return {"lines": [{"seq": r.seq, "line": r.line} for r in rows]}


@router.post("/{run_id}/state", dependencies=[Depends(require_token)])
def external_state(run_id: int, body: StateIn, request: Request) -> dict[str, Any]:
    """The final state of an external run (agents report through ``/agents``)."""
    from glmx.platform.api_agents import finish_run

    with state(request).db.write() as session:
        run = get_run(session, run_id)
        if not run.external:
            raise HTTPException(409, f"run {run_id} is run by an agent; it reports its state")
        if run.state in FINAL_STATES:
            raise HTTPException(409, f"run {run_id} is already {run.state}")
        if body.state == "queued":
            raise HTTPException(422, "an external run cannot be requeued")
        if body.state != "running":
            finish_run(session, run, body)
        return run_dict(run)


def _run_root(request: Request, run: Run) -> Path:
    runs_dir: Path = state(request).settings.runs_dir
    try:
        rel = Path(run.run_dir).resolve().relative_to(runs_dir)
    except ValueError:
        raise HTTPException(404, f"run {run.id}'s directory is not under the runs root") from None
    return confine(runs_dir, str(rel), "run directory")


@router.get("/{run_id}/checkpoints")
def list_checkpoints(run_id: int, request: Request) -> dict[str, Any]:
    """The run's checkpoints ``checkpoint-<step>/`` with their files and sizes."""
    with state(request).db.read() as session:
        run = get_run(session, run_id)
    root = _run_root(request, run) / "checkpoints"
    out = []
    if root.is_dir():
        for d in sorted(root.iterdir(), key=lambda p: p.name):
            if d.is_dir() and d.name.startswith("checkpoint-") and not d.is_symlink():
                files = [
                    {"name": f.name, "bytes": f.stat().st_size}
                    for f in sorted(d.iterdir())
                    if f.is_file() and not f.is_symlink()
                ]
                step = d.name.split("-", 1)[1]
                out.append(
                    {
                        "name": d.name,
                        "step": int(step) if step.isdigit() else None,
                        "complete": (d / "checkpoint_manifest.json").exists(),
                        "files": files,
                    }
                )
    return {"checkpoints": out}


@router.get("/{run_id}/checkpoints/{name}/{file:path}")
def download_checkpoint_file(run_id: int, name: str, file: str, request: Request) -> Response:
    """One file of a checkpoint (paths outside the checkpoint are refused)."""
    with state(request).db.read() as session:
        run = get_run(session, run_id)
    root = confine(_run_root(request, run) / "checkpoints", name, "checkpoint")
    target = confine(root, file, "file")
    if not target.is_file():
        raise HTTPException(404, f"no file '{file}' in checkpoint '{name}'")
    return FileResponse(target, filename=target.name)
