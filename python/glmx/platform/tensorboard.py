"""TensorBoard on demand: one instance per set of runs, on a free loopback port, stopped after
``GLMX_TB_IDLE_TIMEOUT`` seconds (default 600) without a touch from an open run page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from glmx.platform.api_common import get_run, state
from glmx.platform.security import require_token

router = APIRouter(prefix="/api/v1/tensorboard", tags=["tensorboard"])


class TensorBoardIn(BaseModel):
    """Runs to show in one TensorBoard."""

    model_config = ConfigDict(extra="forbid")
    run_ids: list[int] = Field(min_length=1, max_length=20)


class Instances:
    """The running TensorBoard processes of this server."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.next_id = 1
        self.idle_s = float(os.environ.get("GLMX_TB_IDLE_TIMEOUT", "600"))

    def public(self, tb_id: int) -> dict[str, Any]:
        i = self.items[tb_id]
        return {
            "id": tb_id,
            "url": i["url"],
            "run_ids": i["run_ids"],
            "alive": i["proc"].poll() is None,
            "last_touch": i["last_touch"],
        }

    def sweep(self) -> None:
        """Stops idle or dead instances."""
        now = time.time()
        with self.lock:
            for tb_id in list(self.items):
                i = self.items[tb_id]
                if i["proc"].poll() is not None or now - i["last_touch"] > self.idle_s:
                    self.stop(tb_id)

    def stop(self, tb_id: int) -> None:
        i = self.items.pop(tb_id)
        if i["proc"].stdin is not None:
            i["proc"].stdin.close()
        if i["proc"].poll() is None:
            i["proc"].terminate()
            try:
                i["proc"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                i["proc"].kill()

    def stop_all(self) -> None:
        with self.lock:
            for tb_id in list(self.items):
                self.stop(tb_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instances(request: Request) -> Instances:
    """The app's instance table (created on first use)."""
    app_state = state(request)
    if not hasattr(app_state, "tensorboards"):
        app_state.tensorboards = Instances()
    return app_state.tensorboards


@router.post("", status_code=201, dependencies=[Depends(require_token)])
def start(body: TensorBoardIn, request: Request) -> dict[str, Any]:
    """Starts TensorBoard over the runs' directories (reuses a live one for the same runs)."""
    from glmx._optional import available

    if not available("tensorboard"):
        raise HTTPException(503, "TensorBoard is not installed: pip install 'glmx[tb]'")
    tbs = instances(request)
    tbs.sweep()
    runs_dir: Path = state(request).settings.runs_dir
    with state(request).db.read() as session:
        dirs = []
        for rid in body.run_ids:
            run = get_run(session, rid)
            path = Path(run.run_dir).resolve()
            if runs_dir not in path.parents:
                raise HTTPException(409, f"run {rid} is not under the runs root")
            dirs.append(f"run-{rid}:{path}")
    with tbs.lock:
        for tb_id, i in tbs.items.items():
            if i["run_ids"] == body.run_ids and i["proc"].poll() is None:
                i["last_touch"] = time.time()
                return tbs.public(tb_id)
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "glmx.platform.tb_child",  # TensorBoard that exits when the server is gone
                "--logdir_spec",
                ",".join(dirs),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--reload_interval",
                "5",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.PIPE,  # its end-of-file tells the child the server is gone
        )
        tb_id = tbs.next_id
        tbs.next_id += 1
        tbs.items[tb_id] = {
            "proc": proc,
            "url": f"http://127.0.0.1:{port}/",
            "run_ids": list(body.run_ids),
            "last_touch": time.time(),
        }
        return tbs.public(tb_id)


@router.get("")
def list_instances(request: Request) -> dict[str, Any]:
    """Running TensorBoards."""
    tbs = instances(request)
    tbs.sweep()
    with tbs.lock:
        return {"instances": [tbs.public(i) for i in tbs.items]}


@router.post("/{tb_id}/touch", dependencies=[Depends(require_token)])
def touch(tb_id: int, request: Request) -> dict[str, Any]:
    """Keeps an instance alive (a run page that shows it calls this while open)."""
    tbs = instances(request)
    with tbs.lock:
        if tb_id not in tbs.items:
            raise HTTPException(404, f"no TensorBoard {tb_id} (stopped when idle)")
        tbs.items[tb_id]["last_touch"] = time.time()
        return tbs.public(tb_id)


@router.post("/{tb_id}/stop", dependencies=[Depends(require_token)])
def stop(tb_id: int, request: Request) -> dict[str, Any]:
    """Stops an instance."""
    tbs = instances(request)
    with tbs.lock:
        if tb_id not in tbs.items:
            raise HTTPException(404, f"no TensorBoard {tb_id}")
        tbs.stop(tb_id)
    return {"ok": True}
