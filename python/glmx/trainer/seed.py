"""`seed_everything`: one seed for Python, numpy and torch."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, workers: bool = False, verbose: bool = True) -> int:
    """Seed Python, numpy and torch (all devices); returns the seed. The seed is also kept in
    ``PL_GLOBAL_SEED`` (Lightning's variable), where the experiment registry reads it.
    ``verbose`` prints "Seed set to N" (on rank 0), as Lightning does."""
    if verbose and os.environ.get("RANK", "0") == "0":
        from glmx.trainer._console import write_line

        write_line(f"Seed set to {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    return seed
