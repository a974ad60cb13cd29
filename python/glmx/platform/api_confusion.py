"""``/api/v1/runs/{id}/confusion``: the newest confusion matrix of each evaluation stage of an
image run (posted by its agent or reporter, drawn by the run page)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from sqlalchemy import select

from glmx.platform.api_common import get_run, state
from glmx.platform.confusion import MAX_CLASSES
from glmx.platform.ingest import _live_run
from glmx.platform.models import RunArtifact
from glmx.platform.security import require_token

__all__ = ["MAX_BODY_BYTES", "ConfusionIn", "router"]

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

#: Largest request body of ``POST /runs/{id}/confusion`` (413 beyond): 256 classes of counts
#: up to 10^7 take about 0.6 MB.
MAX_BODY_BYTES = 1 << 20
_KIND = "confusion"
_STAGE_ORDER = {"val": 0, "test": 1}

ClassName = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Count = Annotated[StrictInt, Field(ge=0, le=2**53)]


class ConfusionIn(BaseModel):
    """One stage's confusion matrix at one step: ``matrix[i][j]`` counts images of true class
    ``classes[i]`` predicted as ``classes[j]``."""

    model_config = ConfigDict(extra="forbid")
    attempt: int | None = None
    stage: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    step: int = Field(ge=0)
    classes: list[ClassName] = Field(min_length=1, max_length=MAX_CLASSES)
    matrix: list[list[Count]] = Field(min_length=1, max_length=MAX_CLASSES)

    @model_validator(mode="after")
    def _square(self) -> ConfusionIn:
        n = len(self.classes)
        if len(self.matrix) != n:
            raise ValueError(f"matrix has {len(self.matrix)} rows for {n} classes")
        for i, row in enumerate(self.matrix):
            if len(row) != n:
                raise ValueError(f"matrix row {i} has {len(row)} columns for {n} classes")
        if len(set(self.classes)) != n:
            raise ValueError("class names must be unique")
        return self


async def _body_limit(request: Request) -> None:
    # the whole-app limit (--max-body-mb) is far above what a matrix needs
    if len(await request.body()) > MAX_BODY_BYTES:
        raise HTTPException(
            413,
            f"a confusion matrix body is at most {MAX_BODY_BYTES} bytes ({MAX_CLASSES} classes)",
        )


@router.post("/{run_id}/confusion", dependencies=[Depends(require_token), Depends(_body_limit)])
def post_confusion(run_id: int, body: ConfusionIn, request: Request) -> dict[str, Any]:
    """Stores the stage's matrix unless a newer step of that stage is stored already."""
    data = {"classes": body.classes, "matrix": body.matrix}
    with state(request).db.write() as session:
        _live_run(session, run_id, body.attempt)
        row = session.scalars(
            select(RunArtifact).where(
                RunArtifact.run_id == run_id,
                RunArtifact.kind == _KIND,
                RunArtifact.name == body.stage,
            )
        ).first()
        if row is not None and row.step > body.step:
            return {"stored": False, "step": row.step}
        if row is None:
            row = RunArtifact(run_id=run_id, kind=_KIND, name=body.stage)
            session.add(row)
        row.step, row.data, row.updated = body.step, data, time.time()
        return {"stored": True, "step": body.step}


@router.get("/{run_id}/confusion")
def get_confusion(run_id: int, request: Request) -> dict[str, Any]:
    """``{"matrices": [{stage, step, classes, matrix, t}]}``, val first, then test, then the
    rest by name; empty for runs without one."""
    with state(request).db.read() as session:
        get_run(session, run_id)
        rows = session.scalars(
            select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.kind == _KIND)
        ).all()
        out = [
            {"stage": r.name, "step": r.step, "t": r.updated, **r.data}
            for r in sorted(rows, key=lambda r: (_STAGE_ORDER.get(r.name, 2), r.name))
        ]
    return {"matrices": out}
