"""``hydra/launcher=slurm``: the Hydra-style runner submits the job(s) to SLURM instead of
running them in this process.

    python -m glmx.train hydra/launcher=slurm hydra.launcher.partition=gpu hydra.launcher.gpus=1
    python -m glmx.train -m hydra/launcher=slurm model.lr=1e-3,3e-4      # one array job

Each job runs ``python -m glmx.train <its overrides>`` on the cluster through
:class:`glmx.cluster.ExperimentManager` (run records, preemption-safe requeue); the
``hydra/launcher`` overrides themselves are not passed on, so jobs run in-process there.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import Any

from glmx.cluster._slurm import ClusterError
from glmx.cluster.script import SlurmSpec

# keys of the launcher config that are not SlurmSpec fields
_OWN_KEYS = {"_target_", "dry_run", "manager", "root"}


class SlurmLauncher:
    """Marker class named by ``hydra/launcher=slurm`` (``_target_``); see :func:`launch`."""


def _is_launcher_override(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key in ("hydra/launcher", "hydra.launcher") or key.startswith("hydra.launcher.")


def launch(
    launcher_cfg: Mapping[str, Any],
    overrides: list[str],
    multirun: bool,
    config_name: str,
    config_path: str,
    default_config: tuple[str, str],
) -> Any:
    """Submit the run (or the sweep, as an array job) described by the runner's arguments."""
    fields = {f.name for f in dataclasses.fields(SlurmSpec)}
    unknown = set(launcher_cfg) - fields - _OWN_KEYS
    if unknown:
        raise ClusterError(
            f"hydra.launcher has unknown keys {sorted(unknown)}; SLURM settings are {sorted(fields)}"
        )
    spec = SlurmSpec(**{k: v for k, v in launcher_cfg.items() if k in fields and v is not None})
    command = [sys.executable, "-m", "glmx.train"]
    if (config_name, config_path) != default_config:
        command += ["-cn", config_name, "-cp", os.path.abspath(config_path)]
    manager_cls: Any = None
    if launcher_cfg.get("manager"):
        from glmx.hydra.instantiate import locate

        manager_cls = locate(str(launcher_cfg["manager"]))
    if manager_cls is None:
        from glmx.cluster.manager import ExperimentManager

        manager_cls = ExperimentManager
    manager = manager_cls(root=launcher_cfg.get("root") or ".", command=command)
    job_overrides = [o for o in overrides if not _is_launcher_override(o)]
    sub = manager.submit(
        job_overrides, spec, multirun=multirun, dry_run=bool(launcher_cfg.get("dry_run"))
    )
    what = "array job" if sub.array else "job"
    where = ", ".join(str(d) for d in sub.run_dirs)
    if sub.job_id:
        print(f"submitted {what} {sub.job_id}: {where}", flush=True)
    else:
        print(f"dry run: wrote {sub.script} for {where}", flush=True)
    return sub
