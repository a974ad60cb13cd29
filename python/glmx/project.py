"""``Project``: a template project loaded once, materialized as often as needed (notebooks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmx import _config
from glmx.config import Graph

__all__ = ["Project", "ProjectMeta"]


@dataclass(frozen=True)
class ProjectMeta:
    """What the project's ``meta.yaml`` declares (defaults filled in)."""

    name: str
    description: str
    project_dir: str
    search_path: list[str] = field(default_factory=list)
    config_prefix: str = "configs"
    default_config: str | None = None
    configs: list[str] = field(default_factory=list)


class Project:
    """A config of a template project, rendered and parsed once.

    ``Project("cfg.yaml", project_dir="path", **template_vars)`` loads
    ``{config_prefix}/cfg.yaml`` (or ``meta.yaml``'s ``default_config`` when ``config`` is
    None). Call it to build objects: ``proj()`` is target ``main``, ``proj("model")`` one
    target, ``proj("a", "b")`` a tuple, ``proj(["a", "b"])`` a dict; keyword arguments bind
    ``!var`` nodes. Each call builds fresh objects; singletons are shared within one call.
    """

    def __init__(
        self, config: str | None = None, project_dir: str | os.PathLike = ".", **vars: Any
    ) -> None:
        project_dir = os.fspath(project_dir)
        meta, template, rendered, native = _config.config_load_project(config, project_dir, vars)
        self.meta = ProjectMeta(**meta)
        self.config = template
        self._rendered = rendered
        self._graph = Graph(native, base_dir=Path(project_dir))

    @property
    def targets(self) -> list[str]:
        """Top-level keys of the config (``.``-prefixed definitions excluded)."""
        return self._graph.targets

    def __call__(self, *targets: str | list[str] | tuple[str, ...], **vars: Any) -> Any:
        if not targets:
            return self._graph.materialize("main", **vars)
        if len(targets) == 1 and isinstance(targets[0], (list, tuple)):
            names = list(targets[0])
            return dict(zip(names, self._graph.materialize_many(names, **vars), strict=True))
        names = [str(t) for t in targets]
        built = self._graph.materialize_many(names, **vars)
        return built[0] if len(built) == 1 else tuple(built)

    def pp(self) -> str:
        """The rendered YAML text of the config."""
        return self._rendered

    def graph(self) -> str:
        """The node graph as YAML."""
        return self._graph.to_yaml()

    def code(self, target: str = "main") -> str:
        """Standalone Python source whose ``construct(**vars)`` builds ``target``."""
        return self._graph.code(target)

    def __repr__(self) -> str:
        return f"Project({self.config!r}, project_dir={self.meta.project_dir!r})"
