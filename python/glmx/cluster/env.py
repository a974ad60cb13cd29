"""Detect the compute environment: user, scratch, SLURM, accounts, partitions, GPUs.

Nothing is hard-coded: user and scratch come from the environment and the filesystem,
everything else from ``sinfo``, ``squeue`` and ``sacctmgr``. Results are cached per project
in ``<project>/.glmx/env.json`` and re-detected on request or when older than ``max_age``.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from glmx.cluster import _slurm

CACHE_FILE = Path(".glmx") / "env.json"
DOWN_STATES = (
    "down",
    "drain",
    "drng",
    "fail",
    "maint",
    "unk",
    "inval",
    "futr",
    "boot",
    "powered_down",
)


@dataclass
class Partition:
    """One SLURM partition: GPU totals and free GPUs by type (``"gpu"`` when untyped)."""

    name: str
    default: bool = False
    nodes: int = 0
    gpus: dict[str, int] = field(default_factory=dict)
    free_gpus: dict[str, int] = field(default_factory=dict)
    pending_gpus: int = 0


@dataclass
class Environment:
    """What ``glmx env`` prints; ``to_dict``/``from_dict`` round-trip through the cache."""

    user: str
    hostname: str
    home: str
    scratch: str
    slurm: bool
    slurm_version: str | None = None
    accounts: list[dict[str, str]] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    detected_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Environment:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["partitions"] = [Partition(**p) for p in data.get("partitions", [])]
        return cls(**data)

    def gpu_types(self) -> list[str]:
        """All GPU types seen in any partition."""
        return sorted({t for p in self.partitions for t in p.gpus})

    def partition(self, name: str) -> Partition | None:
        """The partition called ``name`` (``None`` if unknown)."""
        return next((p for p in self.partitions if p.name == name), None)


def _user() -> str:
    for key in ("USER", "LOGNAME"):
        if os.environ.get(key):
            return os.environ[key]
    return getpass.getuser()


def scratch_dir(user: str, home: str) -> str:
    """``$GLMX_SCRATCH``, else the first writable of the usual scratch layouts, else ``home``."""
    if os.environ.get("GLMX_SCRATCH"):
        return os.environ["GLMX_SCRATCH"]
    for candidate in (f"/scratch/{user}", f"/scratch/users/{user}", f"/global/scratch/{user}"):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return home


def parse_gres(text: str) -> dict[str, int]:
    """``"gpu:a100:2(S:0-1),gpu:1"`` -> ``{"a100": 2, "gpu": 1}`` (non-GPU gres ignored)."""
    out: dict[str, int] = {}
    text = re.sub(r"\([^)]*\)", "", text)  # "(S:0-1)", "(IDX:0,2)" may hold commas
    for item in text.split(","):
        parts = item.strip().split(":")
        if not parts or parts[0] != "gpu" or len(parts) < 2:
            continue
        kind = parts[1] if len(parts) >= 3 else "gpu"
        try:
            count = int(parts[-1])
        except ValueError:
            continue
        out[kind] = out.get(kind, 0) + count
    return out


def parse_sinfo_nodes(text: str) -> list[Partition]:
    """Parse ``sinfo -h -N -O NodeList:200,Partition:200,Gres:500,GresUsed:500,StateCompact:50``."""
    parts: dict[str, Partition] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 5:
            continue
        _node, pname, gres, used, state = cols[:5]
        default = pname.endswith("*")
        pname = pname.rstrip("*")
        p = parts.setdefault(pname, Partition(name=pname, default=default))
        p.nodes += 1
        total, busy = parse_gres(gres), parse_gres(used)
        down = state.lower().rstrip("*~#!%$@^-").startswith(DOWN_STATES)
        for kind, n in total.items():
            p.gpus[kind] = p.gpus.get(kind, 0) + n
            p.free_gpus[kind] = p.free_gpus.get(kind, 0) + (
                0 if down else max(0, n - busy.get(kind, 0))
            )
    return list(parts.values())


def parse_pending(text: str, partitions: list[Partition]) -> None:
    """Add pending GPU requests from ``squeue -h -t PD -o %P|%b|%D`` to ``partitions``."""
    by_name = {p.name: p for p in partitions}
    for line in text.splitlines():
        cols = line.strip().split("|")
        if len(cols) != 3:
            continue
        per_node = sum(parse_gres(cols[1].replace("gres/", "").replace("gres:", "")).values())
        nodes = int(cols[2]) if cols[2].isdigit() else 1
        for pname in cols[0].split(","):
            if pname in by_name:
                by_name[pname].pending_gpus += per_node * nodes


def detect() -> Environment:
    """Detect the environment now (no cache)."""
    user, home = _user(), str(Path.home())
    env = Environment(
        user=user,
        hostname=socket.gethostname(),
        home=home,
        scratch=scratch_dir(user, home),
        slurm=_slurm.have("sinfo"),
        detected_at=time.time(),
    )
    if not env.slurm:
        env.notes.append("no SLURM client on PATH (sinfo not found)")
        return env
    try:
        env.slurm_version = _slurm.run(["sinfo", "--version"]).strip() or None
        env.partitions = parse_sinfo_nodes(
            _slurm.run(
                [
                    "sinfo",
                    "-h",
                    "-N",
                    "-O",
                    "NodeList:200,Partition:200,Gres:500,GresUsed:500,StateCompact:50",
                ]
            )
        )
        parse_pending(_slurm.run(["squeue", "-h", "-t", "PD", "-o", "%P|%b|%D"]), env.partitions)
    except _slurm.ClusterError as exc:
        env.slurm = False  # a client without a reachable controller cannot submit anything
        env.notes.append(str(exc))
        return env
    try:
        text = _slurm.run(
            ["sacctmgr", "-nP", "show", "assoc", f"user={user}", "format=Account,Partition,QOS"]
        )
        for line in text.splitlines():
            cols = line.split("|")
            if len(cols) == 3 and cols[0]:
                env.accounts.append({"account": cols[0], "partition": cols[1], "qos": cols[2]})
    except _slurm.ClusterError:
        env.notes.append(
            "no accounts: SLURM accounting (sacctmgr) is not available; --account is optional"
        )
    return env


def load_environment(
    project_dir: str | os.PathLike[str] = ".", refresh: bool = False, max_age: float = 600.0
) -> Environment:
    """The cached environment of ``project_dir``, re-detected when ``refresh`` or older than ``max_age`` s."""
    cache = Path(project_dir) / CACHE_FILE
    if not refresh and cache.exists():
        try:
            env = Environment.from_dict(json.loads(cache.read_text(encoding="utf-8")))
            if time.time() - env.detected_at <= max_age:
                return env
        except (json.JSONDecodeError, TypeError, KeyError):
            pass  # a stale or corrupt cache is simply re-detected
    env = detect()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(env.to_dict(), indent=1), encoding="utf-8")
    os.replace(tmp, cache)
    return env


def gpu_type_warning(recorded_gpu: str | None, target_types: list[str]) -> str | None:
    """A warning when a run recorded on ``recorded_gpu`` would resume on another GPU type.

    ``recorded_gpu`` is a device name (``"NVIDIA A100-SXM4-80GB"``) or a gres type; the
    targets are gres types (``"a100"``). Matching ignores case and punctuation.
    """
    if not recorded_gpu or not target_types:
        return None
    norm = re.sub(r"[^a-z0-9]", "", recorded_gpu.lower())
    if any(re.sub(r"[^a-z0-9]", "", t.lower()) in norm for t in target_types):
        return None
    return (
        f"this run started on GPU {recorded_gpu!r} but would resume on {'/'.join(target_types)}: "
        "results may differ (pick a partition/--gpu-type with the same GPU for bit-identical resumes)"
    )
