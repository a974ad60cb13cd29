"""Optional dependencies: import them on first use, or fail with one line naming the extra.

glmx's core needs torch, numpy, pyyaml and zstandard only. Features that need more (plots,
TensorBoard, the platform, Hugging Face models, sweeps, loggers) import their libraries through
:func:`require`, so a missing one is a :class:`MissingDependencyError` (a ``GlmxError``: the CLI
prints it as one line and exits 2) that says which ``pip install 'glmx[EXTRA]'`` brings it.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from glmx.errors import GlmxError


class MissingDependencyError(GlmxError):
    """An optional dependency of the requested feature is not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Imports ``module`` or raises :class:`MissingDependencyError` naming ``extra``.

    Example: ``plt = require("matplotlib.pyplot", "plot", "glmx logs plot")``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:
            raise  # the dependency is there but broken: show the real error
        raise MissingDependencyError(
            f"{feature} needs the Python package '{top}', which is not installed: "
            f"pip install 'glmx[{extra}]'"
        ) from None


def available(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def console_script(name: str) -> str | None:
    """The path of console script ``name`` from this interpreter's environment, else PATH.

    A venv's ``bin`` need not be on PATH (``.venv/bin/glmx`` called by full path, Jupyter
    kernels): the script beside ``sys.executable`` belongs to the same installation.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)
