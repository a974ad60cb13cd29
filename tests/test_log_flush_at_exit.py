"""Rust log records queued just before the interpreter exits are still delivered (issue #20:
the `# @package _group_` warning of a script that composes and exits at once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """\
import sys
import glmx
cfg = glmx.compose("config", [], sys.argv[1])
print(cfg)
"""


def test_group_header_warning_survives_immediate_exit(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "db").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - db: mysql\n  - _self_\nx: 1\n")
    (conf / "db" / "mysql.yaml").write_text("# @package _group_\ndriver: mysql\n")
    script = tmp_path / "compose_and_exit.py"
    script.write_text(SCRIPT)
    # Several runs: without the exit flush the forwarder's 0.2 s tick lost the record each time.
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, str(script), str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert "'_group_': {'driver': 'mysql'}" in run.stdout
        warnings = [line for line in run.stderr.splitlines() if "_group_" in line]
        assert len(warnings) == 1 and "obsolete" in warnings[0], run.stderr
        assert "Traceback" not in run.stderr
