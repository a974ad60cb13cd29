"""Facts about the environment a run executes in: git state, host, GPU, SLURM ids, packages.

Everything here is best effort: a missing ``git`` or a CPU-only host yields ``None`` fields,
never an exception, because recording metadata must not stop a training from starting.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Packages whose versions decide whether two runs are comparable.
PACKAGES = ("glmx", "torch", "numpy", "safetensors", "hydra-core", "pyyaml")
MAX_DIFF_BYTES = 2_000_000


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(cwd: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """``{sha, dirty, branch, diff}`` of the repository containing ``cwd`` (``sha=None`` outside git).

    ``diff`` is ``git diff HEAD`` (tracked files, staged or not), cut at 2 MB.
    """
    cwd = Path(cwd)
    sha = _git(["rev-parse", "HEAD"], cwd)
    if sha is None:
        return {"sha": None, "dirty": None, "branch": None, "diff": ""}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) or ""
    diff = _git(["diff", "HEAD"], cwd) or ""
    if len(diff) > MAX_DIFF_BYTES:
        diff = diff[:MAX_DIFF_BYTES] + "\n[glmx: diff cut at 2 MB]\n"
    branch = (_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd) or "").strip() or None
    return {"sha": sha.strip(), "dirty": bool(status.strip()), "branch": branch, "diff": diff}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent packages are left out) plus Python's."""
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def slurm_ids(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """SLURM job, array and restart ids of this process (empty outside SLURM)."""
    env = os.environ if environ is None else environ
    if "SLURM_JOB_ID" not in env:
        return {}
    out: dict[str, Any] = {
        "job_id": env["SLURM_JOB_ID"],
        "restart_count": int(env.get("SLURM_RESTART_COUNT", "0")),
    }
    if "SLURM_ARRAY_JOB_ID" in env:
        out["array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
        out["array_task_id"] = env.get("SLURM_ARRAY_TASK_ID")
    for key, name in (("SLURM_JOB_PARTITION", "partition"), ("SLURM_JOB_NODELIST", "nodelist")):
        if key in env:
            out[name] = env[key]
    return out


def gpu_model() -> str | None:
    """Name of the first visible CUDA device, ``None`` on CPU-only hosts.

    Uses torch only when it is already imported (a training process), so the CLI stays fast.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # a broken driver must not stop the run
        return None
    return None


def host_facts() -> dict[str, Any]:
    """Hostname, GPU model, SLURM ids, pid and visible devices of this process."""
    return {
        "hostname": socket.gethostname(),
        "gpu": gpu_model(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm": slurm_ids(),
        "pid": os.getpid(),
    }
