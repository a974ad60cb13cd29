"""The ``smoke`` run kind: a built-in workload of a few milliseconds per step, run inside the
agent, for testing the queue at scale (hundreds of runs) without a training process each.

It behaves like a training for the platform: it writes ``trainer_logs.json`` records the agent
streams, checkpoints its step to ``smoke_state.json`` every ``checkpoint_every`` steps and
resumes from it, appends one line per execution to ``executions.log`` (so tests can check a run
ran exactly once), obeys save/stop/cancel, and fails at ``fail_at`` when asked. Its loss is
``1 / (1 + lr * step)``. Overrides: ``steps=N sleep=SECONDS checkpoint_every=N fail_at=STEP lr=X``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["SmokeRun"]


class SmokeRun(threading.Thread):
    """One smoke run in a thread; ``command`` delivers save/stop/abort like job control."""

    def __init__(self, run_dir: Path, overrides: list[str], attempt: int) -> None:
        super().__init__(daemon=True)
        opts: dict[str, Any] = {
            "steps": 10,
            "sleep": 0.0,
            "checkpoint_every": 5,
            "fail_at": -1,
            "lr": 1.0,
        }
        for ov in overrides:
            key, _, value = ov.lstrip("+").partition("=")
            opts[key] = type(opts[key])(float(value)) if key in opts else value
        self.opts = opts
        self.run_dir = Path(run_dir)
        self.attempt = attempt
        self.returncode: int | None = None
        self.final_state = "finished"
        self._commands: list[str] = []
        self._lock = threading.Lock()

    def command(self, name: str) -> None:
        """Queues ``save``, ``stop`` or ``abort`` for the next step boundary."""
        with self._lock:
            self._commands.append(name)

    def _save(self, step: int) -> None:
        tmp = self.run_dir / ".smoke_state.json.tmp"
        tmp.write_text(json.dumps({"step": step}))
        os.replace(tmp, self.run_dir / "smoke_state.json")

    def run(self) -> None:
        try:
            self.returncode = self._run()
        except Exception:  # reported as a failed run
            self.returncode = 1

    def _run(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "executions.log", "a") as f:
            f.write(f"{os.getpid()} {self.attempt} {time.time()}\n")
        state = self.run_dir / "smoke_state.json"
        start = json.loads(state.read_text())["step"] if state.exists() else 0
        log = self.run_dir / "trainer_logs.json"
        steps, every = int(self.opts["steps"]), max(1, int(self.opts["checkpoint_every"]))
        for step in range(start + 1, steps + 1):
            if self.opts["sleep"]:
                time.sleep(float(self.opts["sleep"]))
            if step == int(self.opts["fail_at"]):
                return 3
            loss = 1.0 / (1.0 + float(self.opts["lr"]) * step)
            with open(log, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "timestamp": time.time(),
                            "global_step": step,
                            "epoch": 0,
                            "train/loss": loss,
                        }
                    )
                    + "\n"
                )
            if step % every == 0:
                self._save(step)
            with self._lock:
                commands, self._commands = self._commands, []
            for c in commands:
                if c in ("save", "stop"):
                    self._save(step)
                if c in ("stop", "abort"):
                    self.final_state = "stopped" if c == "stop" else "aborted"
                    return 0
        return 0
