"""``/api/v1/projects``, ``/api/v1/configs`` and ``/api/v1/experiments``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from glmx.platform.api_common import get_or_create_project, state
from glmx.platform.models import ConfigRow, Project
from glmx.platform.schemas import ConfigIn, ProjectIn
from glmx.platform.security import require_token
from glmx.platform.validate import check_experiment, check_overrides, compose_check

router = APIRouter(prefix="/api/v1", tags=["projects"])


def _project(p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "created": p.created}


def _config(c: ConfigRow) -> dict[str, Any]:
    return {
        "id": c.id,
        "project_id": c.project_id,
        "name": c.name,
        "experiment": c.experiment,
        "overrides": list(c.overrides or []),
        "created": c.created,
        "updated": c.updated,
    }


@router.get("/projects")
def list_projects(request: Request) -> dict[str, Any]:
    """All projects."""
    with state(request).db.read() as session:
        return {"projects": [_project(p) for p in session.scalars(select(Project)).all()]}


@router.post("/projects", status_code=201, dependencies=[Depends(require_token)])
def create_project(body: ProjectIn, request: Request) -> dict[str, Any]:
    """A new project (409 when the name exists)."""
    try:
        with state(request).db.write() as session:
            p = Project(name=body.name, description=body.description, created=time.time())
            session.add(p)
            session.flush()
            return _project(p)
    except IntegrityError:
        raise HTTPException(409, f"project '{body.name}' exists") from None


def _validated(body: ConfigIn, request: Request) -> None:
    st = state(request)
    check_experiment(body.experiment)
    check_overrides(body.overrides, "train", [st.settings.data_dir, st.settings.runs_dir])
    compose_check(st.settings.configs_dir, body.experiment, body.overrides)


@router.get("/configs")
def list_configs(request: Request, project: str | None = None) -> dict[str, Any]:
    """Stored configs (of one project)."""
    with state(request).db.read() as session:
        query = select(ConfigRow).order_by(ConfigRow.id)
        if project:
            proj = session.scalars(select(Project).where(Project.name == project)).first()
            if proj is None:
                return {"configs": []}
            query = query.where(ConfigRow.project_id == proj.id)
        return {"configs": [_config(c) for c in session.scalars(query).all()]}


@router.post("/configs", status_code=201, dependencies=[Depends(require_token)])
def create_config(body: ConfigIn, request: Request) -> dict[str, Any]:
    """Stores a config after composing it (422 naming the bad key)."""
    _validated(body, request)
    try:
        with state(request).db.write() as session:
            project = get_or_create_project(session, body.project)
            now = time.time()
            c = ConfigRow(
                project_id=project.id,
                name=body.name,
                experiment=body.experiment,
                overrides=list(body.overrides),
                created=now,
                updated=now,
            )
            session.add(c)
            session.flush()
            return _config(c)
    except IntegrityError:
        raise HTTPException(409, f"config '{body.name}' exists in '{body.project}'") from None


@router.get("/configs/{config_id}")
def show_config(config_id: int, request: Request) -> dict[str, Any]:
    """One stored config."""
    with state(request).db.read() as session:
        c = session.get(ConfigRow, config_id)
        if c is None:
            raise HTTPException(404, f"no config {config_id}")
        return _config(c)


@router.put("/configs/{config_id}", dependencies=[Depends(require_token)])
def update_config(config_id: int, body: ConfigIn, request: Request) -> dict[str, Any]:
    """Edits a stored config (validated again)."""
    _validated(body, request)
    with state(request).db.write() as session:
        c = session.get(ConfigRow, config_id)
        if c is None:
            raise HTTPException(404, f"no config {config_id}")
        c.name, c.experiment, c.overrides = body.name, body.experiment, list(body.overrides)
        c.updated = time.time()
        return _config(c)


@router.get("/experiments")
def list_experiments(request: Request) -> dict[str, Any]:
    """Experiment names (``experiment/*.yaml``) in the server's config tree and glmx's own."""
    from glmx.hydra.compose import shipped_configs

    names: set[str] = set()
    for tree in (state(request).settings.configs_dir, shipped_configs()):
        root = tree / "experiment" if tree is not None else None
        if root is not None and root.is_dir():
            names.update(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
    return {"experiments": sorted(names)}
