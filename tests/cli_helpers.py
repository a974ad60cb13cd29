"""Running the real `glmx` entry point from tests (a subprocess, as a user's shell would)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path


def glmx(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``python -m glmx.cli ARGS`` with captured output."""
    return subprocess.run(
        [sys.executable, "-m", "glmx.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def ok(*args: str, **kw) -> str:
    """Like :func:`glmx`, asserting exit 0; returns stdout."""
    r = glmx(*args, **kw)
    assert r.returncode == 0, f"glmx {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def run_in_pty(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """Runs ``argv`` with a pseudo-terminal as stdin/stdout/stderr (what a terminal user sees:
    progress bars draw as in a terminal); returns the exit code and everything it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=dict(os.environ, COLUMNS="120", TERM="xterm"),
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")
