"""Clusters: environment detection, SLURM submission, preemption-safe requeue.

    from glmx.cluster import ExperimentManager, SlurmSpec
    sub = ExperimentManager().submit(["experiment=tiny"], SlurmSpec(partition="gpu", gpus=2, time="4:00:00"))

``SlurmRequeue`` (a trainer callback) and ``resume_ckpt_path`` import torch and are loaded
on first use, so ``glmx env`` and ``glmx slurm`` start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from glmx.cluster._slurm import ClusterError, job_states
from glmx.cluster.env import Environment, Partition, detect, gpu_type_warning, load_environment
from glmx.cluster.manager import ExperimentManager, Submission
from glmx.cluster.script import SlurmSpec

#: The lab tool's name for the class users subclass.
BaseExperimentManager = ExperimentManager

_LAZY = {"SlurmRequeue": "glmx.cluster.preemption", "resume_ckpt_path": "glmx.cluster.preemption"}

__all__ = [
    "BaseExperimentManager",
    "ClusterError",
    "Environment",
    "ExperimentManager",
    "Partition",
    "SlurmRequeue",
    "SlurmSpec",
    "Submission",
    "detect",
    "gpu_type_warning",
    "job_states",
    "load_environment",
    "resume_ckpt_path",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'glmx.cluster' has no attribute {name!r}")
