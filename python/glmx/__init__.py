"""glmx: genomic language models from a config to a trained, checkpointed, evaluated model.

The heavy lifting (config engine, data loader, training loop, checkpoints) is Rust, exposed
through the native module ``glmx._glmx``; this package holds what users subclass and call.
"""

from __future__ import annotations

# libtorch ships inside the torch wheel; loading torch first makes its shared libraries
# resolvable for the native extension, which links against them.
import torch as _torch  # noqa: F401

from glmx import _glmx
from glmx._logging import start_log_forwarding as _start_log_forwarding
from glmx import config, data
from glmx.data import DnaMlmLoader
from glmx.errors import (
    CheckpointError,
    ConfigCompositionError,
    ConfigError,
    DataError,
    GlmxError,
    OverrideError,
    TrainError,
)
from glmx import ckpt
from glmx.project import Project
from glmx.trainer import (
    Callback,
    DataModule,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    Module,
    Trainer,
    seed_everything,
)

__version__: str = _glmx.__version__

__all__ = [
    "__version__",
    "GlmxError",
    "ConfigError",
    "ConfigCompositionError",
    "OverrideError",
    "DataError",
    "CheckpointError",
    "TrainError",
    "Module",
    "DataModule",
    "Trainer",
    "Callback",
    "EarlyStopping",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "seed_everything",
    "data",
    "DnaMlmLoader",
    "config",
    "Project",
    "ckpt",
]

_start_log_forwarding()
