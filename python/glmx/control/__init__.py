"""Local control of running trainings: a registry of jobs in a per-user ``0700`` directory.

Each training that runs the :class:`glmx.trainer.control.JobControl` callback owns one entry
``<control_dir>/<job_id>/``:

- ``job.json``: who it is (pid, host, command line, run directory, world size, start time);
- ``status.json``: replaced atomically by rank 0 at step boundaries (step, epoch, loss,
  tokens/s, ETA, state);
- ``commands/*.json``: one file per request written by ``glmx control``; rank 0 consumes them
  at the next step boundary, broadcasts the command to every rank, and writes the outcome to
  ``results/<request>.json``.

Nothing listens on a network port: a request is a file only the owning user can write. The
directory is ``$GLMX_CONTROL_DIR``, else ``$XDG_RUNTIME_DIR/glmx-control``, else
``/tmp/glmx-control-<uid>``; it is created ``0700`` and refused when another user owns it or
others can access it. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmx.errors import GlmxError

__all__ = [
    "COMMANDS",
    "ControlError",
    "Job",
    "cleanup",
    "control_dir",
    "find_job",
    "list_jobs",
    "send",
    "wait_result",
]

COMMANDS = ("save", "stop", "save-stop", "abort")
# A running job refreshes status.json at least this often (seconds) while steps complete;
# an entry whose process is alive but silent for much longer is reported as "stale".
STALE_AFTER_S = 600.0


class ControlError(GlmxError):
    """A job control request could not be delivered or answered."""


def control_dir(create: bool = True) -> Path:
    """The per-user control directory (created ``0700`` and checked when ``create``)."""
    env = os.environ.get("GLMX_CONTROL_DIR")
    if env:
        path = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "glmx-control"
    else:
        path = Path("/tmp") / f"glmx-control-{os.getuid()}"
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        st = path.stat()
        if st.st_uid != os.getuid():
            raise ControlError(
                f"control directory {path} belongs to uid {st.st_uid}, not you; set GLMX_CONTROL_DIR"
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ControlError(
                f"control directory {path} is accessible to other users (mode "
                f"{oct(stat.S_IMODE(st.st_mode))}); run `chmod 700 {path}`"
            )
    return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Writes ``data`` to ``path`` atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """``path`` parsed, or None when missing or unreadable (a job may be cleaning up)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Job:
    """One registry entry: ``info`` from ``job.json``, ``status`` from ``status.json``."""

    job_id: str
    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """Process id of rank 0."""
        return int(self.info.get("pid", -1))

    @property
    def state(self) -> str:
        """``running``, ``stale`` (alive but silent), ``finished``, ``failed`` or ``dead``."""
        reported = str(self.status.get("state", "starting"))
        if reported in ("finished", "failed", "aborted", "stopped"):
            return reported
        if self.info.get("host") == socket.gethostname() and not _pid_alive(self.pid):
            return "dead"
        updated = float(self.status.get("updated", self.info.get("started", time.time())))
        if time.time() - updated > STALE_AFTER_S:
            return "stale"
        return reported

    @property
    def alive(self) -> bool:
        """Whether the process may still act on commands."""
        return self.state in ("starting", "running", "stale")

    def to_dict(self) -> dict[str, Any]:
        """Flat record for ``--format json``."""
        return {"job": self.job_id, **self.info, **self.status, "state": self.state}


def load_job(path: Path) -> Job | None:
    """The entry in directory ``path`` (None when it has no readable ``job.json``)."""
    info = read_json(path / "job.json")
    if info is None:
        return None
    return Job(path.name, path, info, read_json(path / "status.json") or {})


def list_jobs() -> list[Job]:
    """All entries, oldest first."""
    root = control_dir(create=False)
    if not root.is_dir():
        return []
    control_dir(create=False)  # ownership and mode check
    jobs = [j for p in root.iterdir() if p.is_dir() and (j := load_job(p)) is not None]
    return sorted(jobs, key=lambda j: float(j.info.get("started", 0)))


def find_job(spec: str | None) -> Job:
    """The job named ``spec``: an id, a unique id prefix, a pid, or None/``last`` for the newest
    live job."""
    jobs = list_jobs()
    if not jobs:
        raise ControlError(
            f"no jobs registered in {control_dir(create=False)}; is a training running?"
        )
    if spec in (None, "last"):
        live = [j for j in jobs if j.alive] or jobs
        return live[-1]
    exact = [j for j in jobs if j.job_id == spec or str(j.pid) == spec]
    matches = exact or [j for j in jobs if j.job_id.startswith(str(spec))]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(j.job_id for j in jobs)
    if not matches:
        raise ControlError(f"no job '{spec}'; jobs: {known}")
    raise ControlError(f"job '{spec}' is ambiguous; jobs: {known}")


def send(job: Job, command: str) -> str:
    """Queues ``command`` for ``job``; returns the request id (see :func:`wait_result`)."""
    if command not in COMMANDS:
        raise ControlError(f"unknown command '{command}'; commands: {', '.join(COMMANDS)}")
    if not job.alive:
        raise ControlError(f"job {job.job_id} is {job.state}; it cannot act on '{command}'")
    request = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    commands = job.path / "commands"
    commands.mkdir(mode=0o700, exist_ok=True)
    write_json(
        commands / f"{request}.json",
        {"command": command, "sent": time.time(), "sender": os.getpid()},
    )
    return request


def wait_result(job: Job, request: str, timeout: float) -> dict[str, Any] | None:
    """The job's answer to ``request``, or None if none came within ``timeout`` seconds (or the
    process ended first)."""
    path = job.path / "results" / f"{request}.json"
    deadline = time.monotonic() + timeout
    while True:
        result = read_json(path)
        if result is not None:
            return result
        if time.monotonic() >= deadline or not load_job(job.path) or not _reload(job).alive:
            return read_json(path)
        time.sleep(0.05)


def _reload(job: Job) -> Job:
    return load_job(job.path) or job


def cleanup(force: bool = False) -> list[str]:
    """Removes entries of jobs that are dead or ended; ``force`` also removes stale ones
    (alive pid but silent for over ``STALE_AFTER_S``, e.g. a reused pid). Returns the ids."""
    removed = []
    for job in list_jobs():
        if job.alive and not (force and job.state == "stale"):
            continue
        shutil.rmtree(job.path, ignore_errors=True)
        removed.append(job.job_id)
    return removed
