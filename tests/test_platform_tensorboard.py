"""A TensorBoard started by ``glmx server`` ends with the server, also when the server is
killed outright (SIGKILL runs no clean-up): a real server, a real TensorBoard on loopback."""

from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("fastapi", reason="the platform extra is not installed")
pytest.importorskip("tensorboard", reason="tensorboard is not installed")
from platform_support import Server, wait_for  # noqa: E402


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_tensorboard_exits_when_the_server_is_killed(tmp_path):
    srv = Server(tmp_path / "home").start()
    try:
        with srv.client() as api:
            r = api.post("/api/v1/runs", json={"experiment": "tiny_cpu", "name": "tb"})
            assert r.status_code == 201, r.text
            tb = api.post("/api/v1/tensorboard", json={"run_ids": [r.json()["id"]]})
            assert tb.status_code == 201, tb.text
        url = tb.json()["url"]
        wait_for(lambda: _up(url), 90, "TensorBoard to answer", poll=0.5)
    finally:
        srv.kill()  # SIGKILL: the server's own shutdown never runs
    started = time.monotonic()
    wait_for(lambda: not _up(url), 30, "TensorBoard to exit after its server died", poll=0.5)
    assert time.monotonic() - started < 30
