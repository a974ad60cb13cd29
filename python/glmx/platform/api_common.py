"""Helpers shared by the API routers."""

from __future__ import annotations

import time
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from glmx.platform.models import Metric, Project, Run

__all__ = ["final_metrics", "get_or_create_project", "get_run", "state"]


def state(request: Request) -> Any:
    """The app state (``settings``, ``db``)."""
    return request.app.state


def get_run(session: Session, run_id: int) -> Run:
    """The run, or 404."""
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    return run


def get_or_create_project(session: Session, name: str, create: bool = True) -> Project:
    """The project named ``name``; ``default`` (or any name when ``create``) is created on use."""
    project = session.scalars(select(Project).where(Project.name == name)).first()
    if project is None:
        if not create and name != "default":
            raise HTTPException(404, f"no project '{name}'")
        project = Project(name=name, description="", created=time.time())
        session.add(project)
        session.flush()
    return project


def final_metrics(session: Session, run_id: int) -> dict[str, Any]:
    """``{key: {"value", "step", "best", "best_step"}}``: each key's last value and its minimum
    (for losses) or maximum (other metrics)."""
    last_step = (
        select(Metric.key, func.max(Metric.step).label("step"))
        .where(Metric.run_id == run_id)
        .group_by(Metric.key)
        .subquery()
    )
    rows = session.execute(
        select(Metric.key, Metric.step, Metric.value)
        .join(
            last_step,
            (Metric.key == last_step.c.key) & (Metric.step == last_step.c.step),
        )
        .where(Metric.run_id == run_id)
    ).all()
    out: dict[str, Any] = {k: {"value": v, "step": s} for k, s, v in rows}
    for key in out:
        better = func.min if "loss" in key or "err" in key else func.max
        best = session.scalar(
            select(better(Metric.value)).where(Metric.run_id == run_id, Metric.key == key)
        )
        out[key]["best"] = best
    return out
