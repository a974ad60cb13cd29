"""``Project``: a template project loaded once, materialized as often as needed (notebooks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmx import _config
from glmx.config import Graph

__all__ = ["Environment", "Project", "ProjectMeta"]


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
    ``!var`` nodes. When ``main`` is a partial of a training entry point
    (``!partial:glmx.cli.train:fit``), ``proj()`` runs it and returns the trainer; ``proj("main")``
    returns the partial itself. Each call builds fresh objects; singletons are shared within one call.

    Hydra-style trees work too: ``Project("train.yaml", project_dir="configs",
    overrides=["experiment=x"])`` composes the tree (a primary config with a ``defaults:`` list
    and no ``meta.yaml``) and builds ``_target_`` nodes with :func:`glmx.instantiate`.
    """

    def __init__(
        self,
        config: str | None = None,
        project_dir: str | os.PathLike = ".",
        overrides: list[str] | tuple[str, ...] | None = None,
        **vars: Any,
    ) -> None:
        project_dir = os.fspath(project_dir)
        self._hydra = None
        if _is_hydra_project(config, project_dir, overrides):
            from glmx._hydra_project import HydraProject

            self._hydra = HydraProject(str(config), project_dir, list(overrides or ()))
            self.meta = ProjectMeta(**self._hydra.meta())
            self.config = str(config)
            self._rendered = self._hydra.pp()
            return
        if overrides:
            from glmx.errors import ConfigError

            raise ConfigError(
                f"overrides= applies to Hydra-style trees; {project_dir} is a template project "
                "(meta.yaml): pass template variables as keyword arguments instead"
            )
        meta, template, rendered, native = _config.config_load_project(config, project_dir, vars)
        self.meta = ProjectMeta(**meta)
        self.config = template
        self._rendered = rendered
        self._graph = Graph(native, base_dir=Path(project_dir))

    @property
    def targets(self) -> list[str]:
        """Top-level keys of the config (``.``-prefixed definitions excluded)."""
        if self._hydra is not None:
            return self._hydra.targets
        return self._graph.targets

    def __call__(self, *targets: str | list[str] | tuple[str, ...], **vars: Any) -> Any:
        if self._hydra is not None:
            return self._call_hydra(targets)
        if not targets:
            return _run_entry_point(self._graph.materialize("main", **vars))
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
        if self._hydra is not None:
            return self._rendered
        return self._graph.to_yaml()

    def code(self, target: str = "main") -> str:
        """Standalone Python source whose ``construct(**vars)`` builds ``target``."""
        if self._hydra is not None:
            return self._hydra.code(target)
        return self._graph.code(target)

    def _call_hydra(self, targets: tuple[Any, ...]) -> Any:
        assert self._hydra is not None
        if not targets:
            return _run_entry_point(self._hydra.build("main"))
        from glmx.hydra.instantiate import shared_singletons

        with shared_singletons():  # one materialization: singletons shared across targets
            if len(targets) == 1 and isinstance(targets[0], (list, tuple)):
                return {str(n): self._hydra.build(str(n)) for n in targets[0]}
            built = tuple(self._hydra.build(str(t)) for t in targets)
        return built[0] if len(built) == 1 else built

    @property
    def environment(self) -> Environment:
        """The project's template environment: search path, template listing and loaders."""
        return Environment(self.meta)

    def __repr__(self) -> str:
        return f"Project({self.config!r}, project_dir={self.meta.project_dir!r})"


class Environment:
    """The search path and loaders of a project (``Project(...).environment``), for notebooks:
    ``env.list_templates()``, ``env.get_source("configs/x.yaml")``, ``env.render(name, **vars)``
    (text) and ``env.load(name, **vars)`` (a :class:`glmx.config.Graph`)."""

    def __init__(self, meta: ProjectMeta) -> None:
        self.meta = meta

    @property
    def search_path(self) -> list[str]:
        """Template directories, first match wins."""
        return list(self.meta.search_path)

    def list_templates(self) -> list[str]:
        """Every template name on the search path (shadowed names once)."""
        from dataclasses import asdict

        from glmx.cli.inspect import _templates

        return [t["template"] for t in _templates(asdict(self.meta)) if not t["shadowed"]]

    def get_source(self, name: str) -> str:
        """The text of template ``name`` (the first match on the search path)."""
        from glmx.errors import GlmxError

        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise GlmxError(
                f"template name '{name}' must be a relative path inside the search path"
            )
        for d in self.search_path:
            path = Path(d) / name
            if path.is_file():
                return path.read_text(encoding="utf-8")
        raise GlmxError(f"template '{name}' not found on the search path {self.search_path}")

    def render(self, name: str, **vars: Any) -> str:
        """Template ``name`` rendered with ``vars``."""
        from glmx.config import render

        return render(self.get_source(name), self.search_path, **vars)

    def load(self, name: str, **vars: Any) -> Graph:
        """Template ``name`` rendered and parsed into a node graph."""
        from glmx.config import load

        return load(self.get_source(name), self.search_path, **vars)


def _run_entry_point(main: Any) -> Any:
    """``proj()`` runs a ``main`` that is a partial of a training entry point (one marked
    ``__glmx_entry_point__``, such as :func:`glmx.cli.train.fit`) and returns its result;
    any other ``main`` is returned as built."""
    import functools

    if isinstance(main, functools.partial) and getattr(main.func, "__glmx_entry_point__", False):
        return main()
    return main


def _is_hydra_project(config: str | None, project_dir: str, overrides: Any) -> bool:
    """A Hydra tree: no ``meta.yaml``, and the primary config has a ``defaults:`` list."""
    if config is None or (Path(project_dir) / "meta.yaml").exists():
        return False
    from glmx.hydra.compose import is_hydra_tree

    name = config if config.endswith(".yaml") else config + ".yaml"
    return is_hydra_tree(Path(project_dir) / name) or bool(overrides)
