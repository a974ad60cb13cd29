"""``glmx agent``: one training agent per device. It registers with the server, claims one run
at a time, runs it (``python -m glmx.train`` in a subprocess with ``CUDA_VISIBLE_DEVICES`` set
to its one GPU), streams metrics and log lines, delivers save/stop/cancel through job control,
heartbeats to keep its lease, and reports the final state.

Failure rules: the training process dies with the agent (``PR_SET_PDEATHSIG``); an agent that
cannot heartbeat for a whole lease kills its run itself (the server requeues it after the lease,
so it never runs twice at once); requests are retried while the server is down (metrics and log
lines wait in memory until delivered, so a server restart loses nothing).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from glmx.platform.executor import Execution
from glmx.platform.settings import PlatformError, config_tree

__all__ = ["Agent", "device_info"]

log = logging.getLogger("glmx.platform.agent")


def device_info(device: str) -> dict[str, Any]:
    """``{device, cuda_visible_devices, gpu_name, gpu_memory_mb}`` for ``cpu`` or ``cuda:N``
    (name and memory from ``nvidia-smi`` when present; torch is not imported)."""
    if device == "cpu":
        return {"device": "cpu", "cuda_visible_devices": "", "gpu_name": "", "gpu_memory_mb": 0}
    if not device.startswith("cuda:") or not device[5:].isdigit():
        raise PlatformError(f"--device must be 'cpu' or 'cuda:N', got '{device}'")
    index = device[5:]
    name, mem = "", 0
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,memory.total",
                    "--format=csv,noheader,nounits",
                    "-i",
                    index,
                ],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.strip()
            name, _, mem_s = out.partition(",")
            name, mem = name.strip(), int(float(mem_s.strip() or 0))
        except (subprocess.SubprocessError, ValueError, OSError):
            pass
    return {"device": device, "cuda_visible_devices": index, "gpu_name": name, "gpu_memory_mb": mem}


class Agent:
    """Claims and executes runs until stopped.

    Args:
        server: server base URL.
        token: API token.
        device: ``cpu`` or ``cuda:N``.
        name: shown on the agents page (default ``host:device``).
        configs_dir: config tree passed to ``python -m glmx.train -cp``.
        work_dir: working directory of training processes (``paths.root_dir``).
        runs_dir: where run directories go when the server's path is not usable here.
        poll_s: seconds between claims while the queue is empty.
        heartbeat_s: seconds between heartbeats (at most a third of the server's lease).
        max_runs: exit after this many runs (None: never).
        exit_when_idle: exit after this many seconds without work (None: never).
    """

    def __init__(
        self,
        server: str,
        token: str | None,
        device: str = "cpu",
        name: str = "",
        configs_dir: str | os.PathLike[str] | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        poll_s: float = 1.0,
        heartbeat_s: float = 5.0,
        max_runs: int | None = None,
        exit_when_idle: float | None = None,
    ) -> None:
        import httpx

        self.server = server.rstrip("/")
        self.info = device_info(device)
        self.name = name or f"{socket.gethostname()}:{device}"
        self.configs_dir = config_tree(configs_dir)
        self.work_dir = Path(work_dir or Path.cwd()).resolve()
        self.runs_dir = Path(runs_dir).resolve() if runs_dir else None
        self.poll_s, self.heartbeat_s = poll_s, heartbeat_s
        self.max_runs, self.exit_when_idle = max_runs, exit_when_idle
        self.lease_s = 30.0
        self.agent_id: int | None = None
        self.stopping = False
        self._http = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=30.0,
        )

    # -- HTTP with retries ------------------------------------------------------------------
    def call(
        self, method: str, path: str, body: Any = None, give_up_s: float | None = None
    ) -> tuple[int, Any]:
        """(status, JSON) of one request, retried while the server is unreachable or answers
        5xx (for ``give_up_s`` seconds, None: until the agent stops). 401 raises."""
        import httpx

        deadline = None if give_up_s is None else time.monotonic() + give_up_s
        delay = 0.1
        while True:
            try:
                r = self._http.request(method, path, json=body)
                if r.status_code == 401:
                    raise PlatformError(f"the server at {self.server} refused the token (401)")
                if r.status_code < 500:
                    return r.status_code, (r.json() if r.content else None)
                why = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as err:
                why = str(err) or type(err).__name__
            if deadline is not None and time.monotonic() > deadline:
                return 0, {"detail": why}
            log.warning("server unreachable (%s); retrying in %.1f s", why, delay)
            time.sleep(delay)
            delay = min(2.0, delay * 2)

    def register(self) -> None:
        """Registers (retrying until the server answers)."""
        body = {
            "name": self.name,
            "host": socket.gethostname(),
            "device": self.info["device"],
            "gpu_name": self.info["gpu_name"],
            "gpu_memory_mb": self.info["gpu_memory_mb"],
        }
        status, data = self.call("POST", "/api/v1/agents", body)
        if status != 201:
            raise PlatformError(f"agent registration failed: {status} {data}")
        self.agent_id = int(data["id"])
        self.lease_s = float(data.get("lease_s", self.lease_s))
        self.heartbeat_s = min(self.heartbeat_s, self.lease_s / 3)
        log.info("agent %s registered as %d (lease %.1f s)", self.name, self.agent_id, self.lease_s)

    def claim(self) -> dict[str, Any] | None:
        """The next run, or None."""
        status, data = self.call("POST", f"/api/v1/agents/{self.agent_id}/claim")
        if status == 404:  # the server forgot us (a new database): register again
            self.register()
            return None
        if status == 200:
            return data
        if status not in (204, 409):
            log.warning("claim answered %s %s", status, data)
        return None

    # -- main loop --------------------------------------------------------------------------
    def serve(self) -> int:
        """Claims and runs until stopped, ``max_runs`` runs, or ``exit_when_idle`` seconds
        without work; returns the number of runs executed."""
        self._install_signals()
        self.register()
        done = 0
        idle_since = time.monotonic()
        try:
            while not self.stopping:
                if self.max_runs is not None and done >= self.max_runs:
                    break
                run = self.claim()
                if run is None:
                    if (
                        self.exit_when_idle is not None
                        and time.monotonic() - idle_since > self.exit_when_idle
                    ):
                        break
                    time.sleep(self.poll_s)
                    continue
                Execution(self, run).execute()
                done += 1
                idle_since = time.monotonic()
        finally:
            self.call("POST", f"/api/v1/agents/{self.agent_id}/offline", give_up_s=5)
            self._http.close()
        return done

    def run_dir(self, run: dict[str, Any]) -> Path:
        """Where ``run`` writes: the server's path, or ``<runs_dir>/run-<id>`` with --runs-dir."""
        if self.runs_dir is not None:
            return self.runs_dir / f"run-{int(run['id'])}"
        return Path(run["run_dir"])

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            # take no new run; the current one checkpoints, stops and goes back to the queue
            self.stopping = True

        try:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        except ValueError:  # not the main thread (an agent inside a test process)
            pass
