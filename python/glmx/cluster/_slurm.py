"""Thin wrappers over the SLURM client commands (``sbatch``, ``squeue``, ``scontrol``, ...).

Every call has a timeout and turns a missing command or a non-zero exit into a
:class:`ClusterError` that names the command and its stderr, so callers never hang on a dead
controller and users see what SLURM said.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence

from glmx.errors import GlmxError

# squeue states after which a job will not run again without a requeue.
TERMINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
}


class ClusterError(GlmxError):
    """A SLURM command failed, is missing, or its output could not be understood."""


def have(command: str) -> bool:
    """Whether ``command`` is on ``PATH``."""
    return shutil.which(command) is not None


def run(args: Sequence[str], timeout: float = 30.0, check: bool = True) -> str:
    """Run a SLURM command and return its stdout; raises :class:`ClusterError` on failure."""
    if not have(args[0]):
        raise ClusterError(
            f"'{args[0]}' is not on PATH: is this a SLURM login node (or is the slurm client installed)?"
        )
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(
            f"'{' '.join(args)}' did not answer within {timeout:.0f} s (is slurmctld up?)"
        ) from exc
    if check and out.returncode != 0:
        msg = (out.stderr or out.stdout).strip() or f"exit status {out.returncode}"
        raise ClusterError(f"'{' '.join(args)}' failed: {msg}")
    return out.stdout


def job_key(job_id: str | int, array_task_id: str | int | None = None) -> str:
    """The id SLURM commands accept for a job or one array task (``ARRAYID_TASKID``)."""
    return f"{job_id}_{array_task_id}" if array_task_id not in (None, "") else str(job_id)


def job_states(keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """``{key: {"state", "reason"}}`` for jobs still known to ``squeue``, then to ``sacct``
    when accounting is enabled. Jobs neither knows about are absent."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    out: dict[str, dict[str, str]] = {}
    # -r: one line per array task, so "123_1" is matched exactly.
    text = run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(keys)], check=False)
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0] in keys:
            out[parts[0]] = {"state": parts[1], "reason": parts[2], "source": "squeue"}
    missing = [k for k in keys if k not in out]
    if missing and have("sacct"):
        text = run(
            ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j", ",".join(missing)],
            check=False,
        )
        for line in text.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3 and parts[0] in missing:
                # sacct writes e.g. "CANCELLED by 0"
                out[parts[0]] = {
                    "state": parts[1].split()[0],
                    "reason": parts[2],
                    "source": "sacct",
                }
    return out
