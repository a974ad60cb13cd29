"""Template configs: line-syntax Jinja templates rendered to tagged YAML, built into a node graph
and materialized into Python objects.

>>> from glmx import config
>>> config.render("-- set n = 2\\nx: {{ n * k }}\\n", k=3)
'x: 6\\n'
>>> g = config.load(
...     "opt: !partial:pow {arg1: 2}\\nmain: !singleton:dict {a: !var {name: a, default: 1}}\\n"
... )
>>> g.targets
['opt', 'main']
>>> g.materialize(a=5)
{'a': 5}
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from glmx import _config
from glmx.config._materialize import Latent, Materializer, NodeTable

__all__ = ["Graph", "Latent", "load", "preprocess", "render"]

PathLike = str | os.PathLike


def _paths(search_path: Iterable[PathLike] | PathLike) -> list[str]:
    if isinstance(search_path, (str, os.PathLike)):
        return [os.fspath(search_path)]
    return [os.fspath(p) for p in search_path]


def preprocess(text: str) -> str:
    """Returns ``text`` with the line syntax (``--``, ``<<``, ``>>``, ``==``, ``=>``, ``##``) and
    the ``[block]`` shorthand translated to plain Jinja; line numbers are preserved."""
    return _config.config_preprocess(text)


def render(text: str, search_path: Iterable[PathLike] | PathLike = (), **vars: Any) -> str:
    """Renders template ``text`` (templates it extends or includes are looked up in
    ``search_path``) with template variables ``vars``; returns the YAML text."""
    return _config.config_render(text, _paths(search_path), vars)


def load(text: str, search_path: Iterable[PathLike] | PathLike = (), **vars: Any) -> Graph:
    """Renders ``text`` (template variables ``vars``) and builds its node graph."""
    return Graph(_config.config_load(text, _paths(search_path), vars))


class Graph:
    """A node graph. ``targets`` lists the top-level keys; :meth:`materialize` builds them."""

    def __init__(self, native: Any, base_dir: PathLike | None = None) -> None:
        self._native = native
        self._table = NodeTable(
            native.nodes(), native.file, Path(base_dir) if base_dir is not None else Path.cwd()
        )
        targets, definitions = native.roots()
        self._targets = dict(targets)
        self._definitions = dict(definitions)

    @property
    def targets(self) -> list[str]:
        """Top-level keys that are not ``.definitions``, in file order."""
        return list(self._targets)

    def materialize(self, name: str = "main", **vars: Any) -> Any:
        """Builds target ``name``; ``vars`` bind ``!var`` nodes. Every call builds fresh
        objects; singletons are shared within the call."""
        return self.materialize_many([name], **vars)[0]

    def materialize_many(self, names: Sequence[str], **vars: Any) -> list[Any]:
        """Builds several targets in one materialization (they share singletons)."""
        from glmx.errors import ConfigError

        m = Materializer(self._table, vars)
        out = []
        for name in names:
            if name not in self._targets:
                raise ConfigError(
                    f"{self._table.file or '<string>'}: no target '{name}'; targets: "
                    f"{', '.join(self._targets) or '(none)'}"
                )
            out.append(m.build(self._targets[name]))
        return out

    def to_yaml(self) -> str:
        """The graph as YAML: tags spelled out, shared nodes anchored once then aliased."""
        return self._native.to_yaml()

    def code(self, target: str = "main") -> str:
        """Standalone Python source defining ``construct(**vars)`` that builds ``target``."""
        return self._native.code(target)

    def __repr__(self) -> str:
        return f"Graph(targets={self.targets!r})"
