"""Serving a trained model over HTTP: ``glmx serve`` and ``glmx client``.

``create_app(net, ServeSettings(...))`` is the FastAPI application (``/v1/models``,
``/v1/embeddings``, ``/v1/logits``, ``/v1/score``) with dynamic batching
(:class:`~glmx.serve.batcher.Batcher`); :class:`~glmx.serve.client.Client` talks to it.
Needs the ``serve`` extra (``pip install 'glmx[serve]'``); see docs/serving.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "ServeSettings", "create_app", "require"]

_EXTRA_OF = {
    "fastapi": "serve",
    "uvicorn": "serve",
    "httpx": "serve",
    "pydantic": "serve",
    "transformers": "hf",
    "tokenizers": "hf",
    "safetensors": "hf",
}


def require(*modules: str, feature: str = "glmx serve") -> None:
    """Imports ``modules``; a missing one raises
    :class:`glmx._optional.MissingDependencyError` (a ``GlmxError``) naming the extra that
    installs it (``pip install 'glmx[serve]'``)."""
    from glmx._optional import require as _require

    for name in modules:
        _require(name, _EXTRA_OF.get(name, "all"), feature)


def __getattr__(name: str) -> Any:
    if name in ("ServeSettings", "create_app"):
        from glmx.serve import app

        return getattr(app, name)
    if name == "Client":
        from glmx.serve.client import Client

        return Client
    raise AttributeError(name)
