"""Real parts for the platform tests: a uvicorn server, agents and a throwaway PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TOKEN = "test-token-0123456789"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    """The environment for server/agent subprocesses (the test's glmx, the test token)."""
    out = {**os.environ, "GLMX_PLATFORM_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    python_dir = str(REPO / "python")
    out["PYTHONPATH"] = os.pathsep.join(p for p in (python_dir, out.get("PYTHONPATH")) if p)
    out.update(extra)
    return out


class Server:
    """``glmx server`` as a subprocess on a free loopback port."""

    def __init__(
        self,
        home: Path,
        db_url: str | None = None,
        lease: float = 30.0,
        extra_args: tuple[str, ...] = (),
        extra_env: dict | None = None,
        port: int | None = None,
    ) -> None:
        self.home, self.db_url, self.lease = Path(home), db_url, lease
        self.extra_args, self.extra_env = extra_args, extra_env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "glmx.cli",
            "server",
            "--port",
            str(self.port),
            "--home",
            str(self.home),
            "--configs",
            str(CONFIGS),
            "--lease",
            str(self.lease),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        if self.db_url:
            cmd += ["--db", self.db_url]
        self.log = open(self.home.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            cmd, env=env(**self.extra_env), stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.read_log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.read_log()}")

    def read_log(self) -> str:
        return (self.home.parent / f"server-{self.port}.log").read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )


def start_agent(
    url: str, workdir: Path, *args: str, extra_env: dict | None = None, log_name: str = "agent"
) -> subprocess.Popen:
    """``glmx agent --device cpu`` as a subprocess (its log in ``workdir/<log_name>.log``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / f"{log_name}.log", "ab")
    cmd = [
        sys.executable,
        "-m",
        "glmx.cli",
        "agent",
        "--server",
        url,
        "--device",
        "cpu",
        "--configs",
        str(CONFIGS),
        "--work-dir",
        str(workdir),
        "--poll",
        "0.2",
        *args,
    ]
    return subprocess.Popen(cmd, env=env(**(extra_env or {})), stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):  # type: ignore[no-untyped-def]
    """Polls ``predicate()`` until truthy (returned) or fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


class Postgres:
    """A throwaway PostgreSQL 15 cluster in a temp dir (run as ``postgres`` when root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="glmx-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/glmx"
        self._prefix: list[str] = []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres")
            os.chmod(self.dir, 0o700)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._prefix, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        data = self.dir / "data"
        self._run(
            str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(self.dir / "pg.log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200",
            "start",
        )
        self._run(
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "glmx",
        )
        return self

    def stop(self) -> None:
        try:
            self._run(
                str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"
            )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def postgres_available() -> bool:
    """Whether PostgreSQL 15's binaries are installed."""
    return (PG_BIN / "initdb").exists()


def show_view(page, url: str, hash_: str) -> None:  # type: ignore[no-untyped-def]
    """Go to a dashboard page (a Playwright page) and wait until its first data is drawn: the
    page shown before may still be on screen for a moment, and its elements must not match."""
    page.goto(f"{url}/{hash_}")
    page.wait_for_selector(f'#main > .view[data-shown="{hash_}"]')
