"""``glmx.Project`` over a Hydra-style config tree (``configs/train.yaml`` with ``defaults:``).

The tree is composed once with the given overrides; targets are the top-level keys and are
built with ``glmx.instantiate`` (``_target_`` nodes), fresh at every call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from glmx.hydra import compose, instantiate


def _first_comment(path: Path) -> str:
    try:
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("#") and not stripped.startswith("# @package"):
                return stripped.lstrip("#").strip()
            if stripped and not stripped.startswith("#"):
                break
    except OSError:
        pass
    return ""


def _literal(value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict) and "_target_" in value:
        return _call_source(value, indent)
    if isinstance(value, dict):
        items = ",\n".join(f"{pad}    {k!r}: {_literal(v, indent + 4)}" for k, v in value.items())
        return "{\n" + items + f",\n{pad}}}" if value else "{}"
    if isinstance(value, list):
        items = ",\n".join(f"{pad}    {_literal(v, indent + 4)}" for v in value)
        return "[\n" + items + f",\n{pad}]" if value else "[]"
    return repr(value)


def _call_source(node: dict[str, Any], indent: int) -> str:
    pad = " " * indent
    target = str(node["_target_"])
    args = [_literal(v, indent + 4) for v in node.get("_args_", [])]
    kwargs = [
        f"{k}={_literal(v, indent + 4)}"
        for k, v in node.items()
        if not (k.startswith("_") and k.endswith("_"))
    ]
    call = (
        "functools.partial(" + target + (", " if args or kwargs else "")
        if node.get("_partial_")
        else target + "("
    )
    parts = args + kwargs
    if not parts:
        return call + ")"
    body = ",\n".join(f"{pad}    {p}" for p in parts)
    return f"{call}\n{body},\n{pad})"


def _imports(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        if "_target_" in value:
            module = str(value["_target_"]).rsplit(".", 1)[0]
            out.add(module.split(".")[0] if "." not in module else module)
            if value.get("_partial_"):
                out.add("functools")
        for v in value.values():
            _imports(v, out)
    elif isinstance(value, list):
        for v in value:
            _imports(v, out)


class HydraProject:
    """The Hydra-tree half of :class:`glmx.Project` (see its docstring)."""

    def __init__(
        self, config: str, config_dir: str | os.PathLike[str], overrides: list[str]
    ) -> None:
        self.config_dir = Path(config_dir)
        self.config = config
        self.overrides = list(overrides)
        name = config[:-5] if config.endswith(".yaml") else config
        self.cfg = compose(name, self.overrides, str(self.config_dir))

    @property
    def targets(self) -> list[str]:
        return list(self.cfg)

    def build(self, name: str) -> Any:
        if name == "main" and "main" not in self.cfg:
            return instantiate(self.cfg)
        if name not in self.cfg:
            from glmx.errors import ConfigError

            raise ConfigError(
                f"{self.config_dir / self.config}: no target '{name}'; targets: {', '.join(self.cfg)}"
            )
        value = self.cfg[name]
        return instantiate(value) if isinstance(value, (dict, list)) else value

    def pp(self) -> str:
        import yaml

        return yaml.safe_dump(self.cfg, sort_keys=False)

    def code(self, target: str) -> str:
        value = self.cfg if target == "main" and "main" not in self.cfg else self.cfg[target]
        modules: set[str] = set()
        _imports(value, modules)
        header = "".join(f"import {m}\n" for m in sorted(modules))
        return f"{header}\n\ndef construct():\n    return {_literal(value, 4)}\n"

    def meta(self) -> dict[str, Any]:
        configs = sorted(
            str(p.relative_to(self.config_dir))
            for p in self.config_dir.rglob("*.yaml")
            if p.is_file()
        )
        from glmx.hydra import search_path

        return {
            "name": self.config,
            "description": _first_comment(self.config_dir / self.config),
            "project_dir": str(self.config_dir),
            "search_path": [d for _, d in search_path(str(self.config_dir))],
            "config_prefix": "",
            "default_config": self.config,
            "configs": configs,
        }
