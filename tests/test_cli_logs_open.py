"""`glmx logs plot -e` on a machine where the file cannot be opened (issue #20): a one-line
warning naming where the plot is, exit 0; "opened" only when the opener succeeded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import glmx as run_glmx


def _run_dir(root: Path) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    recs = [{"timestamp": 1.0 + s, "global_step": s, "train/loss": 3.0 / s} for s in range(1, 6)]
    (run / "trainer_logs.json").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def _plot(tmp_path: Path, env: dict) -> tuple[int, str, str]:
    r = run_glmx(
        "logs", "plot", str(_run_dir(tmp_path)), "-o", "p.png", "-e", cwd=tmp_path, env=env
    )
    return r.returncode, r.stdout, r.stderr


@pytest.mark.skipif(shutil.which("xdg-open") is None, reason="needs xdg-open (Linux desktop tool)")
def test_headless_xdg_open_failure_is_a_warning(tmp_path: Path) -> None:
    # the real xdg-open without a display: "no method available for opening", exit 3
    env = {"GLMX_OPENER": "", "DISPLAY": "", "WAYLAND_DISPLAY": "", "BROWSER": ""}
    code, out, err = _plot(tmp_path, env)
    assert code == 0, err
    assert "wrote p.png" in out and "opened" not in out
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1, err
    assert warning[0].startswith("glmx logs: warning: could not open p.png with xdg-open (exit ")
    assert warning[0].endswith(f"the file is at {tmp_path / 'p.png'}")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_failing_opener_reports_its_error(tmp_path: Path) -> None:
    # a shell viewer starts in milliseconds: glmx waits 2 s for a viewer to fail, which a
    # Python start-up on a loaded machine could exceed (it would then count as opened)
    fail = "sh -c 'echo viewer: cannot connect to display >&2; exit 1' sh"
    code, out, err = _plot(tmp_path, {"GLMX_OPENER": fail})
    assert code == 0, err
    assert "opened" not in out
    assert "(exit 1: viewer: cannot connect to display); the file is at" in err
    assert len(err.strip().splitlines()) == 1, err


def test_viewer_that_stays_open_counts_as_opened(tmp_path: Path) -> None:
    marker = tmp_path / "viewer.txt"
    # a viewer that stays open far longer than glmx waits; it records its file and pid
    viewer = (
        f'{sys.executable} -c "import os, sys, time;'
        f" open({str(marker)!r}, 'w').write(sys.argv[1] + ' ' + str(os.getpid()));"
        ' time.sleep(60)"'
    )
    start = time.perf_counter()
    code, out, err = _plot(tmp_path, {"GLMX_OPENER": viewer})
    elapsed = time.perf_counter() - start
    for _ in range(100):  # the viewer may still be starting on a loaded machine
        if marker.exists() and len(marker.read_text().split()) == 2:
            break
        time.sleep(0.1)
    name, pid = marker.read_text().split()
    os.kill(int(pid), signal.SIGTERM)
    assert code == 0, err
    assert "opened p.png with" in out and "warning" not in err
    assert elapsed < 40  # glmx did not wait for the viewer to close
    assert name == "p.png"


def test_no_viewer_installed_is_a_warning(tmp_path: Path) -> None:
    # PATH without xdg-open/open: the platform has no viewer at all
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {"GLMX_OPENER": "", "PATH": str(bare)}
    r = run_glmx(
        "logs", "plot", str(_run_dir(tmp_path)), "-o", "p.png", "-e", cwd=tmp_path, env=env
    )
    assert r.returncode == 0, r.stderr
    assert "not found (no desktop viewer); the file is at" in r.stderr
    assert os.path.getsize(tmp_path / "p.png") > 0
