"""Running the real `glmx` entry point from tests (a subprocess, as a user's shell would)."""

from __future__ import annotations

import os
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
