"""The glmx training platform: a server with a database of projects, configs and runs, a queue,
one training agent per GPU, live metrics, and a Python client.

- ``glmx server``: FastAPI + SQLAlchemy (SQLite by default, PostgreSQL by URL), migrations
  applied at start, REST API under ``/api/v1`` (OpenAPI docs at ``/docs``);
- ``glmx agent --server URL --device cuda:0``: claims runs and trains them;
- ``glmx runs submit|list|show|cancel``, or :class:`Client` from Python;
- :class:`PlatformReporter`: a callback that reports a run started elsewhere.

Names are imported on first use (the client and the reporter do not import FastAPI).
See docs/platform.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmx.platform.agent import Agent
    from glmx.platform.app import create_app, serve
    from glmx.platform.client import APIError, Client
    from glmx.platform.reporter import PlatformReporter
    from glmx.platform.settings import PlatformError, Settings

__all__ = [
    "APIError",
    "Agent",
    "Client",
    "PlatformError",
    "PlatformReporter",
    "Settings",
    "create_app",
    "serve",
]

_LAZY = {
    "Agent": "glmx.platform.agent",
    "APIError": "glmx.platform.client",
    "Client": "glmx.platform.client",
    "PlatformError": "glmx.platform.settings",
    "PlatformReporter": "glmx.platform.reporter",
    "Settings": "glmx.platform.settings",
    "create_app": "glmx.platform.app",
    "serve": "glmx.platform.app",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'glmx.platform' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
