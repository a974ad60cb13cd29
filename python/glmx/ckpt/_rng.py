"""Capture and restore every random number generator a training run draws from."""

from __future__ import annotations

import random
from typing import Any

import torch

__all__ = ["rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    """State of Python's ``random``, numpy's global RNG, torch's CPU RNG and (when initialised)
    the CUDA RNGs; store it per rank (``PER_RANK``) and restore with :func:`set_rng_state`."""
    import numpy as np

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators from :func:`rng_state` output (as returned by a checkpoint load).

    Missing entries are left alone; CUDA state is restored only when CUDA is available.
    """
    import numpy as np

    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(
            (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda = [t.to("cpu", torch.uint8) for t in state["cuda"]]
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
