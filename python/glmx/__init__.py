"""glmx: genomic language models from a config to a trained, checkpointed, evaluated model.

The heavy lifting is Rust: the config engine in ``glmx._config`` and the data loader, training
loop and checkpoint coordinator in ``glmx._glmx`` (which links libtorch). This package holds
what users subclass and call. Names are imported on first use, so ``import glmx`` and the
config tools stay fast and never import torch unless a torch-backed name is touched.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import TYPE_CHECKING, Any

from glmx import _config
from glmx._logging import start_log_forwarding as _start_log_forwarding
from glmx.errors import (
    CheckpointError,
    ConfigCompositionError,
    ConfigError,
    DataError,
    GlmxError,
    OverrideError,
    TrainError,
)

if TYPE_CHECKING:
    from glmx import ckpt, config, data, hydra, models, trainer
    from glmx.data import DnaMlmLoader
    from glmx.hydra import compose, instantiate, register_resolver
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

__version__: str = _config.__version__

# public name -> module that defines it (imported on first access)
_LAZY_NAMES = {
    "Module": "glmx.trainer",
    "DataModule": "glmx.trainer",
    "Trainer": "glmx.trainer",
    "Callback": "glmx.trainer",
    "EarlyStopping": "glmx.trainer",
    "LearningRateMonitor": "glmx.trainer",
    "ModelCheckpoint": "glmx.trainer",
    "seed_everything": "glmx.trainer",
    "DnaMlmLoader": "glmx.data",
    "Project": "glmx.project",
    "compose": "glmx.hydra",
    "instantiate": "glmx.hydra",
    "register_resolver": "glmx.hydra",
}
_SUBMODULES = {"ckpt", "config", "data", "hydra", "models", "trainer", "project", "logs", "eval"}

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
    "DnaMlmLoader",
    "Project",
    "compose",
    "instantiate",
    "register_resolver",
    "ckpt",
    "config",
    "data",
    "hydra",
    "models",
    "trainer",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"glmx.{name}")
    else:
        raise AttributeError(f"module 'glmx' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES) | _SUBMODULES)


class _TorchBeforeCore(importlib.abc.MetaPathFinder):
    """Imports torch before the extension module ``glmx._glmx`` is loaded.

    ``glmx._glmx`` links libtorch. Its run path (``$ORIGIN/../torch/lib``) finds torch when both
    are installed in one site-packages; importing torch first also covers torch installed
    elsewhere (a venv with ``--system-site-packages``), since the loader then reuses the
    libraries torch loaded. Returning ``None`` hands the lookup on to the regular finders.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "glmx._glmx" and "torch" not in sys.modules:
            try:
                import torch  # noqa: F401
            except ModuleNotFoundError as err:
                raise ImportError(
                    "glmx's native core needs torch==2.13.0, which is not installed: "
                    "pip install torch==2.13.0"
                ) from err
        return None


if not any(isinstance(f, _TorchBeforeCore) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchBeforeCore())

_start_log_forwarding()
