"""The FastAPI application: ``create_app(settings)`` and ``serve(...)``.

At start the server applies the packaged migrations, gives runs that were live one fresh lease
(their agents could not heartbeat while it was down), and sweeps expired leases every few
seconds (those runs go back to the queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from glmx.platform.db import Database
from glmx.platform.queue import extend_leases, requeue_expired
from glmx.platform.security import BodyLimit
from glmx.platform.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger("glmx.platform")


async def _sweep(app: FastAPI, db: Database, every: float) -> None:
    def once() -> list[int]:
        if hasattr(app.state, "tensorboards"):
            app.state.tensorboards.sweep()
        with db.write() as session:
            return requeue_expired(session)

    while True:
        await asyncio.sleep(every)
        try:
            ids = await asyncio.to_thread(once)
            if ids:
                log.warning("lease expired, requeued runs %s", ids)
        except Exception:  # the next sweep retries; the server must not die of a DB hiccup
            log.exception("lease sweep failed")


def create_app(settings: Settings) -> FastAPI:
    """The API app for ``settings`` (see :class:`glmx.platform.settings.Settings`)."""
    from glmx import __version__
    from glmx.platform import (
        api_agents,
        api_confusion,
        api_projects,
        api_runs,
        stream,
        tensorboard,
        web,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_url)
        await asyncio.to_thread(db.migrate)
        with db.write() as session:
            extend_leases(session, settings.lease_s)
        app.state.db = db
        task = asyncio.create_task(_sweep(app, db, max(0.2, min(5.0, settings.lease_s / 3))))
        try:
            yield
        finally:
            task.cancel()
            if hasattr(app.state, "tensorboards"):
                app.state.tensorboards.stop_all()
            db.dispose()

    app = FastAPI(
        title="glmx platform",
        version=__version__,
        description="Projects, configs, a run queue, GPU agents and live metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-GLMX-Token"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(web.SecurityHeaders)
    for module in (api_projects, api_runs, api_confusion, api_agents, stream, tensorboard, web):
        app.include_router(module.router)

    @app.get("/api/v1/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness, version and database kind (no token needed)."""
        return {"ok": True, "version": __version__, "db": app.state.db.engine.dialect.name}

    return app


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Runs the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
