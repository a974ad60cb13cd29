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
``/tmp/glmx-control-<uid>``; it is created ``0700``, opened without following symlinks and
refused when another user owns it or others can access it (checked on the open descriptor, and
every access afterwards is relative to that descriptor; see ``docs/security.md``). Command
files must be small regular files; anything else is skipped with a warning. Nothing here
imports torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmx.control._fs import (
    MAX_FILE_BYTES,
    ControlError,
    UnsafeFile,
    check_private,
    ensure_dir,
    open_dir,
    read_bytes,
    read_json_at,
    remove_tree,
    write_json_at,
)

__all__ = [
    "COMMANDS",
    "MAX_FILE_BYTES",
    "ControlError",
    "Job",
    "cleanup",
    "control_dir",
    "find_job",
    "list_jobs",
    "scan_jobs",
    "send",
    "wait_result",
]

COMMANDS = ("save", "stop", "save-stop", "abort")
# A running job refreshes status.json at least this often (seconds) while steps complete;
# an entry whose process is alive but silent for much longer is reported as "stale".
STALE_AFTER_S = 600.0


def _root_path() -> Path:
    env = os.environ.get("GLMX_CONTROL_DIR")
    if env:
        return Path(env)
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "glmx-control"
    return Path("/tmp") / f"glmx-control-{os.getuid()}"


def open_root(create: bool = True) -> int | None:
    """Descriptor of the checked control directory (created ``0700`` when ``create``), or
    None when it does not exist. The caller closes it."""
    path = _root_path()
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    try:
        fd = open_dir(path)
    except FileNotFoundError:
        if create:
            raise ControlError(f"cannot create control directory {path}") from None
        return None
    except OSError as err:
        raise ControlError(
            f"control directory {path} cannot be opened safely ({err.strerror}; a symlink is "
            "refused); set GLMX_CONTROL_DIR to a directory of your own"
        ) from None
    try:
        check_private(fd, str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _root(create: bool = False) -> Iterator[int | None]:
    fd = open_root(create)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def control_dir(create: bool = True) -> Path:
    """The per-user control directory (created ``0700`` and checked when ``create``; checked
    when it exists otherwise)."""
    with _root(create):
        return _root_path()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Writes ``data`` to ``path`` atomically (readers never see half a file)."""
    fd = open_dir(path.parent)
    try:
        write_json_at(path.name, fd, data)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """``path`` parsed, or None when missing, unreadable or not a small regular file."""
    try:
        fd = open_dir(path.parent)
    except OSError:
        return None
    try:
        return read_json_at(path.name, fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return True


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
        pid = self.info.get("pid", -1)
        return pid if isinstance(pid, int) and not isinstance(pid, bool) else -1

    @property
    def state(self) -> str:
        """``running``, ``stale`` (alive but silent), ``finished``, ``failed`` or ``dead``."""
        reported = str(self.status.get("state", "starting"))
        if reported in ("finished", "failed", "aborted", "stopped", "interrupted"):
            return reported
        if self.info.get("host") == socket.gethostname() and not _pid_alive(self.pid):
            return "dead"
        updated = _number(self.status.get("updated")) or _number(self.info.get("started"))
        if updated is not None and time.time() - updated > STALE_AFTER_S:
            return "stale"
        return reported

    @property
    def alive(self) -> bool:
        """Whether the process may still act on commands."""
        return self.state in ("starting", "running", "stale")

    def to_dict(self) -> dict[str, Any]:
        """Flat record for ``--format json``."""
        return {"job": self.job_id, **self.info, **self.status, "state": self.state}


def _malformed(info: dict[str, Any]) -> str | None:
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return f"'pid' must be a positive integer, got {pid!r}"
    if _number(info.get("started")) is None:
        return f"'started' must be a number, got {info.get('started')!r}"
    if not isinstance(info.get("host", ""), str):
        return f"'host' must be a string, got {info.get('host')!r}"
    return None


def _load_at(job_id: str, root_fd: int) -> tuple[Job | None, str | None]:
    """``(job, None)``, ``(None, problem)`` or ``(None, None)`` when the entry is not (yet) a
    job (no ``job.json``)."""
    where = _root_path() / job_id
    try:
        fd = open_dir(job_id, root_fd)
    except OSError:
        return None, None
    try:
        try:
            info = json.loads(read_bytes("job.json", fd))
        except FileNotFoundError:
            return None, None
        except (OSError, UnsafeFile) as err:
            return None, f"{where}/job.json: {err}"
        except ValueError as err:
            return None, f"{where}/job.json is not valid JSON ({err})"
        if not isinstance(info, dict):
            return None, f"{where}/job.json is not a JSON object"
        problem = _malformed(info)
        if problem:
            return None, f"{where}/job.json: {problem}"
        status = read_json_at("status.json", fd) or {}
        return Job(job_id, where, info, status), None
    finally:
        os.close(fd)


def load_job(path: Path) -> Job | None:
    """The entry in directory ``path`` (None when it has no valid ``job.json``)."""
    with _root() as root:
        if root is None:
            return None
        return _load_at(path.name, root)[0]


def _scan() -> tuple[list[Job], list[tuple[str, str]]]:
    jobs: list[Job] = []
    problems: list[tuple[str, str]] = []
    with _root() as root:
        if root is None:
            return jobs, problems
        for entry in os.scandir(root):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            job, problem = _load_at(entry.name, root)
            if job is not None:
                jobs.append(job)
            elif problem:
                problems.append((entry.name, problem))
    jobs.sort(key=lambda j: _number(j.info.get("started")) or 0.0)
    return jobs, problems


def scan_jobs() -> tuple[list[Job], list[str]]:
    """All valid entries, oldest first, and one message per malformed entry (naming its file
    and what is wrong)."""
    jobs, problems = _scan()
    return jobs, [p for _, p in problems]


def list_jobs() -> list[Job]:
    """All valid entries, oldest first (malformed ones are skipped with a warning)."""
    jobs, problems = scan_jobs()
    for problem in problems:
        warnings.warn(f"skipping malformed job entry: {problem}", stacklevel=2)
    return jobs


def find_job(spec: str | None) -> Job:
    """The job named ``spec``: an id, a unique id prefix, a pid, or None/``last`` for the newest
    live job."""
    jobs = list_jobs()
    if not jobs:
        raise ControlError(f"no jobs registered in {_root_path()}; is a training running?")
    if spec in (None, "last"):
        live = [j for j in jobs if j.alive] or jobs
        return live[-1]
    exact = [j for j in jobs if j.job_id == spec or str(j.pid) == spec]
    matches = exact or [j for j in jobs if j.job_id.startswith(str(spec))]
    if len(matches) == 1:
        return matches[0]
    live = ", ".join(j.job_id for j in jobs if j.alive) or "none (`glmx control list -a` shows all)"
    if not matches:
        raise ControlError(f"no job '{spec}'; live jobs: {live}")
    raise ControlError(
        f"job '{spec}' is ambiguous ({len(matches)} matches); give more of the id. Live jobs: {live}"
    )


@contextmanager
def _job_dir(job: Job) -> Iterator[int]:
    with _root() as root:
        if root is None:
            raise ControlError(f"control directory {_root_path()} is gone")
        try:
            fd = open_dir(job.job_id, root)
        except OSError as err:
            raise ControlError(f"job {job.job_id} is gone ({err.strerror})") from None
        try:
            yield fd
        finally:
            os.close(fd)


def send(job: Job, command: str) -> str:
    """Queues ``command`` for ``job``; returns the request id (see :func:`wait_result`)."""
    if command not in COMMANDS:
        raise ControlError(f"unknown command '{command}'; commands: {', '.join(COMMANDS)}")
    if not job.alive:
        raise ControlError(f"job {job.job_id} is {job.state}; it cannot act on '{command}'")
    request = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    with _job_dir(job) as fd:
        commands = ensure_dir("commands", fd, str(job.path))
        try:
            body = {"command": command, "sent": time.time(), "sender": os.getpid()}
            write_json_at(f"{request}.json", commands, body)
        except OSError as err:
            raise ControlError(
                f"cannot queue '{command}' in {job.path}/commands: {err.strerror}"
            ) from None
        finally:
            os.close(commands)
    return request


def _result(job: Job, request: str) -> tuple[dict[str, Any] | None, Job | None]:
    """The answer to ``request`` (if any) and the reloaded job (None when it is gone)."""
    with _root() as root:
        if root is None:
            return None, None
        try:
            fd = open_dir(job.job_id, root)
        except OSError:
            return None, None
        try:
            try:
                results = open_dir("results", fd)
            except OSError:
                answer = None
            else:
                try:
                    answer = read_json_at(f"{request}.json", results)
                finally:
                    os.close(results)
        finally:
            os.close(fd)
        return answer, _load_at(job.job_id, root)[0]


def wait_result(job: Job, request: str, timeout: float) -> dict[str, Any] | None:
    """The job's answer to ``request``, or None if none came within ``timeout`` seconds (or the
    process ended first)."""
    deadline = time.monotonic() + timeout
    while True:
        answer, current = _result(job, request)
        if answer is not None:
            return answer
        if time.monotonic() >= deadline or current is None or not current.alive:
            return _result(job, request)[0]
        time.sleep(0.05)


def cleanup(force: bool = False) -> list[str]:
    """Removes entries of jobs that are dead or ended, and malformed entries; ``force`` also
    removes stale ones (alive pid but silent for over ``STALE_AFTER_S``, e.g. a reused pid).
    Returns the ids."""
    removed = []
    jobs, problems = _scan()
    with _root() as root:
        if root is None:
            return removed
        for job in jobs:
            if job.alive and not (force and job.state == "stale"):
                continue
            remove_tree(job.job_id, root)
            removed.append(job.job_id)
        for job_id, _ in problems:
            remove_tree(job_id, root)
            removed.append(job_id)
    return removed
