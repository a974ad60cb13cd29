"""Materialization of a node graph: Python objects from the Rust node table.

Node table rows (from ``ConfigGraph.nodes()``), ``loc = (line, dotted_key)``:
``("value", v, loc)``, ``("list", ids, shared, loc)``, ``("tuple", ids, True, loc)``,
``("dict", [(key_id, value_id)], shared, loc)``,
``("call", (kind, (spec_kind, a, b), spec_text, arg_ids, [(name, id)], node_name), loc)``,
``("var", name, default_id | None, loc)``, ``("meta", inner_id, loc)``.

Sharing: singletons, partials and ``!dict``/``!list``/``!tuple`` are built once per
materialization (cached even when the result is ``None``); factories and plain YAML containers
are built at every occurrence, so a plain mapping reached through two aliases is two copies.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from glmx.errors import ConfigError

_MISSING = object()


def _where(file: str | None, loc: tuple[int, str]) -> str:
    line, key = loc
    return f"{file or '<string>'}:{line}" + (f" (key '{key}')" if key else "")


def _load_file_module(path: Path) -> Any:
    name = f"_glmx_cfg_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load Python file '{path}'")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve_callable(spec: tuple[str, str, str], text: str, base_dir: Path, where: str) -> Any:
    """Imports the callable ``spec``; failures raise ConfigError carrying the ImportError text."""
    kind, a, b = spec
    try:
        if kind == "builtin":
            if not hasattr(builtins, a):
                raise ImportError(f"no builtin named '{a}'")
            return getattr(builtins, a)
        if kind == "file":
            path = Path(a)
            if not path.is_absolute():
                path = base_dir / path
            obj = _load_file_module(path)
        else:
            obj = importlib.import_module(a)
        for part in b.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError, OSError, SyntaxError) as err:
        raise ConfigError(
            f"{where}: cannot import callable '{text}': {type(err).__name__}: {err}"
        ) from err


class Latent:
    """An unmaterialized subgraph (from ``!meta``); call :meth:`materialize` to build it."""

    def __init__(self, table: NodeTable, node_id: int) -> None:
        self._table = table
        self._id = node_id

    def materialize(self, **vars: Any) -> Any:
        """Builds the subgraph with ``!var`` bindings ``vars``."""
        return Materializer(self._table, vars).build(self._id)

    def __repr__(self) -> str:
        return f"Latent(node={self._id}, file={self._table.file!r})"


class NodeTable:
    """The node rows of one graph plus what resolving callables needs."""

    def __init__(self, rows: list[tuple], file: str | None, base_dir: Path) -> None:
        self.rows = rows
        self.file = file
        self.base_dir = base_dir


class Materializer:
    """Builds nodes of one table; one instance is one materialization (its singleton cache)."""

    def __init__(self, table: NodeTable, vars: dict[str, Any]) -> None:
        self.table = table
        self.vars = vars
        self.memo: dict[int, Any] = {}

    def build(self, node_id: int) -> Any:
        row = self.table.rows[node_id]
        kind = row[0]
        if kind == "value":
            return row[1]
        cached = self.memo.get(node_id, _MISSING)
        if cached is not _MISSING:
            return cached
        if kind == "list":
            value = [self.build(i) for i in row[1]]
            shared = row[2]
        elif kind == "tuple":
            value, shared = tuple(self.build(i) for i in row[1]), True
        elif kind == "dict":
            value = {self.build(k): self.build(v) for k, v in row[1]}
            shared = row[2]
        elif kind == "call":
            value, shared = self._call(row[1], row[2])
        elif kind == "var":
            value, shared = self._var(row[1], row[2], row[3]), False
        else:
            value, shared = Latent(self.table, row[1]), False
        if shared:
            self.memo[node_id] = value
        return value

    def _var(self, name: str, default: int | None, loc: tuple[int, str]) -> Any:
        if name in self.vars:
            return self.vars[name]
        if default is not None:
            return self.build(default)
        raise ConfigError(
            f"{_where(self.table.file, loc)}: variable '{name}' is not bound; pass it when "
            f"materializing (proj(..., {name}=...)) or write !var {{name: {name}, default: ...}}"
        )

    def _call(self, call: tuple, loc: tuple[int, str]) -> tuple[Any, bool]:
        kind, spec, text, arg_ids, kwarg_ids, _name = call
        where = _where(self.table.file, loc)
        func = resolve_callable(spec, text, self.table.base_dir, where)
        args = [self.build(i) for i in arg_ids]
        kwargs = {k: self.build(i) for k, i in kwarg_ids}
        if kind == "partial":
            return functools.partial(func, *args, **kwargs), True
        try:
            value = func(*args, **kwargs)
        except Exception as err:
            # The user's exception surfaces unchanged; the note says which node raised it.
            err.add_note(f"glmx: while building !{kind}:{text} at {where}")
            raise
        return value, kind == "singleton"
