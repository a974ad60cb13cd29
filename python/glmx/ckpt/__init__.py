"""Crash-safe, asynchronous, pickle-free checkpoints (Rust coordinator, ``glmx._glmx``).

* :class:`CheckpointManager` saves and loads ``<run>/checkpoints/checkpoint-<step>/``.
* :func:`flatten_state` / :func:`unflatten_state` turn nested state (optimizer, scheduler)
  into tensors + JSON and back, exactly.
* :func:`rng_state` / :func:`set_rng_state` capture Python, numpy, torch and CUDA RNGs.
* :func:`save_file` / :func:`load_file` store one nested value in a single safetensors file.

See ``docs/checkpoints.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glmx import _glmx
from glmx.ckpt._nested import flatten_state, unflatten_state
from glmx.ckpt._rng import rng_state, set_rng_state
from glmx.ckpt.manager import SHARING_PATTERNS, CheckpointInfo, CheckpointManager
from glmx.errors import CheckpointError

__all__ = [
    "CheckpointManager",
    "CheckpointInfo",
    "CheckpointError",
    "SHARING_PATTERNS",
    "flatten_state",
    "unflatten_state",
    "rng_state",
    "set_rng_state",
    "save_file",
    "load_file",
]


def save_file(state: Any, path: str | Path) -> tuple[int, str]:
    """Write nested ``state`` to one safetensors file (fsynced, no pickle).

    Returns ``(size_in_bytes, checksum)``. The structure is JSON in the file's metadata, so the
    file also opens with ``safetensors.safe_open``.
    """
    structure, tensors = flatten_state(state)
    meta = {"glmx.format": "glmx.nested/1", "glmx.structure": structure}
    return _glmx.write_safetensors(str(path), tensors, meta)


def load_file(path: str | Path, map_location: Any = None) -> Any:
    """Read a value written by :func:`save_file`; never executes code."""
    tensors, meta = _glmx.read_safetensors(str(path))
    if "glmx.structure" not in meta:
        return dict(tensors)  # a plain safetensors file: name -> tensor
    return unflatten_state(meta["glmx.structure"], dict(tensors), map_location)
