"""Hydra-style configs: compose a config tree, instantiate ``_target_`` nodes, run jobs.

Users of Hydra + Lightning trees (``configs/train.yaml`` with ``defaults:`` lists, config
groups, ``experiment=x`` overrides, ``-m`` sweeps) use the same trees and command lines with
glmx. The engine is Rust; this package is the Python face of it.
"""

from __future__ import annotations

from glmx.hydra.compose import compose, compose_project, register_resolver, search_path
from glmx.hydra.instantiate import InstantiationError, instantiate, locate

__all__ = [
    "compose",
    "compose_project",
    "register_resolver",
    "search_path",
    "instantiate",
    "locate",
    "InstantiationError",
]
