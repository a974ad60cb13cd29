"""One run executed by an agent: process, streaming, heartbeats, actions, final report."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmx.platform.confusion import ConfusionWatcher
from glmx.platform.smoke import SmokeRun
from glmx.platform.tail import FileTail, records_to_points

if TYPE_CHECKING:
    from glmx.platform.agent import Agent

__all__ = ["Execution", "has_checkpoint", "train_command"]

log = logging.getLogger("glmx.platform.agent")
_TICK = 0.05
_FLUSH_S = 0.5
_CANCEL_GRACE_S = 15.0
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run directory holds a complete checkpoint to resume from."""
    root = run_dir / "checkpoints"
    return root.is_dir() and any(
        (d / "checkpoint_manifest.json").is_file() for d in root.glob("checkpoint-*")
    )


def train_command(run: dict[str, Any], run_dir: Path, configs_dir: Path | None) -> list[str]:
    """``python -m glmx.train -cp CONFIGS experiment=X overrides hydra.run.dir=DIR`` (plus
    ``ckpt_path=last`` when a checkpoint exists: a requeued run resumes)."""
    cmd = [sys.executable, "-m", "glmx.train"]
    if configs_dir is not None:
        cmd += ["-cp", str(configs_dir)]
    cmd += [f"experiment={run['experiment']}", *run["overrides"], f"hydra.run.dir={run_dir}"]
    if has_checkpoint(run_dir):
        cmd.append("ckpt_path=last")
    return cmd


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Execution:
    """Executes ``run`` for ``agent`` (see :meth:`execute`)."""

    def __init__(self, agent: Agent, run: dict[str, Any]) -> None:
        self.agent = agent
        self.run = run
        self.id, self.attempt = int(run["id"]), int(run["attempt"])
        self.dir = agent.run_dir(run)
        self.metrics_tail = FileTail(self.dir / "trainer_logs.json")
        self.output_tail = FileTail(self.dir / "output.log")
        self.confusion = ConfusionWatcher(self.dir)
        self.points: list[dict[str, Any]] = []
        self.matrices: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.log_seq: int | None = run.get("next_log_seq")  # where self.lines[0] will land
        self.proc: subprocess.Popen[bytes] | None = None
        self.smoke: SmokeRun | None = None
        self.pending: list[str] = []
        self.cancel_at: float | None = None
        self.lost = False
        self.returning = False
        self.step = 0

    # -- process ------------------------------------------------------------------------------
    def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.run["kind"] == "smoke":
            self.smoke = SmokeRun(self.dir, self.run["overrides"], self.attempt)
            self.smoke.start()
            return
        env = {
            **os.environ,
            "CUDA_VISIBLE_DEVICES": self.agent.info["cuda_visible_devices"],
            "GLMX_PLATFORM_RUN_ID": str(self.id),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("GLMX_RUN_DIR", None)
        cmd = train_command(self.run, self.dir, self.agent.configs_dir)
        with open(self.dir / "output.log", "ab") as out:
            out.write(f"[glmx agent] attempt {self.attempt}: {' '.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.agent.work_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _returncode(self) -> int | None:
        if self.smoke is not None:
            return None if self.smoke.is_alive() else (self.smoke.returncode or 0)
        return self.proc.poll() if self.proc is not None else 1

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.smoke is not None:
            self.smoke.command("abort")
            self.smoke.join()

    # -- job control ----------------------------------------------------------------------------
    def _job(self) -> Any:
        """This run's job control entry (found by pid), None before it registered."""
        from glmx import control

        if self.proc is None:
            return None
        try:
            jobs = control.list_jobs()
        except control.ControlError as err:
            log.warning("run %d: job control unavailable: %s", self.id, err)
            return None
        return next((j for j in jobs if j.pid == self.proc.pid), None)

    def _deliver(self) -> None:
        """Hands pending actions to the run (job control for trainings)."""
        from glmx import control

        while self.pending:
            action = self.pending[0]
            command = {"save": "save", "stop": "stop", "cancel": "abort"}[action]
            if self.smoke is not None:
                self.smoke.command(command)
            else:
                job = self._job()
                if job is None:  # not registered yet (still importing): next tick
                    if action == "cancel" and time.time() - (self.cancel_at or 0) > 5:
                        self._kill()  # aborting before the first step is killing
                    return
                try:
                    control.send(job, command)
                except control.ControlError as err:
                    log.warning("run %d: %s not delivered: %s", self.id, action, err)
            self.pending.pop(0)

    def _control_state(self) -> str:
        if self.smoke is not None:
            return self.smoke.final_state
        job = self._job()
        return str(job.status.get("state", "")) if job is not None else ""

    # -- streaming ------------------------------------------------------------------------------
    def _collect(self, final: bool = False) -> None:
        new = records_to_points(self.metrics_tail.read())
        if new:
            self.step = max(self.step, max(p["step"] for p in new))
            self.points.extend(new)
        self.lines.extend(_ANSI.sub("", line) for line in self.output_tail.read())
        matrices = self.confusion.poll(force=final)
        if matrices:  # a stage's newer matrix replaces one still waiting to be sent
            stages = {m["stage"] for m in matrices}
            self.matrices = [m for m in self.matrices if m["stage"] not in stages] + matrices

    def _flush(self, final: bool = False) -> None:
        """Sends buffered points and lines; they stay buffered until the server took them."""
        base = f"/api/v1/runs/{self.id}"
        for what, buf in (("metrics", self.points), ("logs", self.lines)):
            while buf and not self.lost:
                batch = buf[:5000]
                body: dict[str, Any] = {"attempt": self.attempt}
                if what == "metrics":
                    body["points"] = batch  # an upsert: re-sending is harmless
                else:
                    body["lines"] = batch
                    if self.log_seq is not None:  # a server before first_seq refuses the key
                        body["first_seq"] = self.log_seq
                status, data = self.agent.call(
                    "POST",
                    f"{base}/{what}",
                    body,
                    give_up_s=None if final else self.agent.lease_s / 2,
                )
                if status == 200:
                    if what == "logs":  # no answer to read: append as before
                        self.log_seq = data.get("next_seq") if isinstance(data, dict) else None
                    del buf[: len(batch)]
                elif status == 409:
                    self.lost = True
                elif status == 0:
                    return  # unreachable: try again next round
                else:
                    log.warning("run %d: %s rejected: %s %s", self.id, what, status, data)
                    del buf[: len(batch)]
        while self.matrices and not self.lost:
            status, data = self.agent.call(
                "POST",
                f"{base}/confusion",
                {"attempt": self.attempt, **self.matrices[0]},
                give_up_s=None if final else self.agent.lease_s / 2,
            )
            if status == 0:
                return
            if status == 409:
                self.lost = True
            elif status != 200:
                log.warning("run %d: confusion matrix rejected: %s %s", self.id, status, data)
            self.matrices.pop(0)

    def _heartbeat(self) -> bool:
        """False when the lease could not be renewed."""
        status, data = self.agent.call(
            "POST",
            f"/api/v1/agents/{self.agent.agent_id}/heartbeat",
            {"run_id": self.id, "attempt": self.attempt, "step": self.step},
            give_up_s=self.agent.heartbeat_s,
        )
        if status != 200:
            return False
        if not data.get("valid", True):
            log.warning("run %d taken away: %s", self.id, data.get("reason"))
            self.lost = True
        action = data.get("action")
        if action and action not in self.pending and not (action == "cancel" and self.cancel_at):
            self.pending.append(action)
            if action == "cancel":
                self.cancel_at = time.time()
        return True

    def _report(self, state: str, **extra: Any) -> int:
        status, data = self.agent.call(
            "POST",
            f"/api/v1/agents/{self.agent.agent_id}/runs/{self.id}/state",
            {"attempt": self.attempt, "state": state, **extra},
        )
        if status != 200:
            log.warning("run %d: state %s not accepted: %s %s", self.id, state, status, data)
        return status

    # -- the whole run --------------------------------------------------------------------------
    def execute(self) -> None:
        """Starts the run, streams until it exits, reports its final state."""
        try:
            self._start()
        except OSError as err:
            self._report("failed", exit_code=None, summary={"error": f"cannot start: {err}"})
            return
        if self._report("running") == 409:
            self._kill()
            return
        last_flush = last_beat = last_ok = time.monotonic()
        while True:
            code = self._returncode()
            self._collect()
            now = time.monotonic()
            if self.agent.stopping and not self.returning and not self.cancel_at:
                # the agent is shutting down: checkpoint, stop, hand the run back to the queue
                self.returning = True
                self.pending.append("stop")
            if self.pending:
                self._deliver()
            if self.cancel_at and time.time() - self.cancel_at > _CANCEL_GRACE_S:
                self._kill()
            if code is None and now - last_flush >= _FLUSH_S:
                self._flush()
                last_flush = now
            if code is None and now - last_beat >= self.agent.heartbeat_s:
                if self._heartbeat():
                    last_ok = now
                last_beat = time.monotonic()
            if self.lost or now - last_ok > self.agent.lease_s:
                # fenced: the server requeues this run; it must not keep running here
                log.warning("run %d: lease lost; killing it", self.id)
                self._kill()
                return
            if code is not None:
                break
            time.sleep(_TICK)
        self._collect(final=True)
        self._flush(final=True)
        if self.lost:
            return
        self._report(self._final_state(code), exit_code=code, summary=self._summary(code))

    def _final_state(self, code: int) -> str:
        if self.cancel_at:
            return "cancelled"
        if code != 0:
            return "failed"
        if self._control_state() == "stopped":
            return "queued" if self.returning else "preempted"
        return "done"

    def _summary(self, code: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exit_code": code,
            "attempt": self.attempt,
            "host": os.uname().nodename,
            "device": self.agent.info["device"],
        }
        job = self._job() if self.smoke is None else None
        if job is not None:
            for k in ("step", "epoch", "tokens_per_sec", "elapsed_s", "last_checkpoint"):
                out[k] = job.status.get(k)
        if code != 0 and self.smoke is None:
            try:
                tail = Path(self.dir / "output.log").read_text(errors="replace").splitlines()
                out["error_tail"] = tail[-20:]
            except OSError:
                pass
        return out
