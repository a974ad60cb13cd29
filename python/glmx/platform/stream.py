"""``/api/v1/runs/{id}/stream``: a WebSocket pushing new metric points and state changes.

Browsers cannot set headers on a WebSocket, so the client sends the token as its first
message ``{"token": "..."}``; the server closes with code 4401 when it is wrong. Then the
server sends ``{"type": "state", ...}`` and ``{"type": "metrics", "points": [...]}`` messages
as the database changes (polled every ``interval`` seconds, so it works across processes),
and closes after the run reached a final state and everything was sent.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select

from glmx.platform.models import FINAL_STATES, Metric, Run
from glmx.platform.security import token_ok

router = APIRouter(tags=["stream"])


def _poll(db, run_id: int, after_id: int) -> tuple[dict | None, list[dict], int]:  # type: ignore[no-untyped-def]
    with db.read() as session:
        run = session.get(Run, run_id)
        if run is None:
            return None, [], after_id
        rows = session.scalars(
            select(Metric)
            .where(Metric.run_id == run_id, Metric.id > after_id)
            .order_by(Metric.id)
            .limit(5000)
        ).all()
        info = {
            "type": "state",
            "state": run.state,
            "attempt": run.attempt,
            "last_step": run.last_step,
            "agent_id": run.agent_id,
            "started": run.started,
            "finished": run.finished,
            "exit_code": run.exit_code,
        }
        points = [
            {"key": m.key, "step": m.step, "value": m.value, "epoch": m.epoch, "t": m.timestamp}
            for m in rows
        ]
        return info, points, (rows[-1].id if rows else after_id)


@router.websocket("/api/v1/runs/{run_id}/stream")
async def stream(websocket: WebSocket, run_id: int, interval: float = 0.5) -> None:
    """Pushes ``state`` and ``metrics`` messages for one run."""
    await websocket.accept()
    settings = websocket.app.state.settings
    db = websocket.app.state.db
    try:
        first = await asyncio.wait_for(websocket.receive_text(), timeout=10)
        token = json.loads(first).get("token") if first.startswith("{") else None
    except (asyncio.TimeoutError, WebSocketDisconnect, ValueError):
        token = None
    if not token_ok(token, settings.token):
        await websocket.close(code=4401, reason="missing or wrong token")
        return
    interval = min(max(interval, 0.05), 10.0)
    last_state: dict | None = None
    after = 0
    try:
        while True:
            info, points, after = await asyncio.to_thread(_poll, db, run_id, after)
            if info is None:
                await websocket.close(code=4404, reason=f"no run {run_id}")
                return
            if info != last_state:
                await websocket.send_json(info)
                last_state = info
            if points:
                await websocket.send_json({"type": "metrics", "points": points})
            elif info["state"] in FINAL_STATES:
                await websocket.close(code=1000)
                return
            await asyncio.sleep(interval)
    except WebSocketDisconnect:
        return
