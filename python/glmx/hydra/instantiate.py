"""``instantiate()``: build objects from ``_target_`` nodes, as ``hydra.utils.instantiate``.

A mapping with ``_target_: pkg.mod.Name`` is a call: other keys are keyword arguments,
``_args_`` positional ones, ``_partial_: true`` returns a ``functools.partial``, ``_recursive_``
(default true) builds nested nodes first, ``_convert_`` (``none|partial|object|all``) is
accepted for compatibility (configs here are already plain containers). Call-site kwargs
override config kwargs. Errors name the target, the full key, and the real ImportError.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from glmx.errors import ConfigError

# `_glmx_singleton_` marks a node written as `!singleton:...` (see glmx-config compose/tagged.rs):
# every reference to it builds one object per instantiate() call.
_SINGLETON = "_glmx_singleton_"
_SPECIAL = {"_target_", "_args_", "_partial_", "_recursive_", "_convert_", _SINGLETON}
_singletons: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "glmx_singletons", default=None
)
_CONVERT = {"none", "partial", "object", "all"}


class InstantiationError(ConfigError):
    """A ``_target_`` could not be located, or calling it failed (the cause is chained)."""


def locate(path: str) -> Any:
    """Imports ``pkg.mod.Attr`` (or ``pkg.mod:Attr.sub``); errors carry the real ImportError."""
    if not path or not isinstance(path, str):
        raise InstantiationError(f"could not locate target {path!r}: expected a dotted path string")
    if ":" in path:
        mod_name, _, attr = path.partition(":")
        try:
            obj: Any = importlib.import_module(mod_name)
        except Exception as e:
            raise InstantiationError(
                f"could not locate target '{path}': {type(e).__name__}: {e}"
            ) from e
        parts = attr.split(".") if attr else []
    else:
        parts = path.split(".")
        obj = None
        first_error: BaseException | None = None
        n = 0
        # Longest importable module prefix, so a failing import inside a real module surfaces.
        for i in range(len(parts), 0, -1):
            name = ".".join(parts[:i])
            try:
                obj = importlib.import_module(name)
                n = i
                break
            except ModuleNotFoundError as e:
                if e.name is not None and not name.startswith(e.name) and first_error is None:
                    first_error = e
                continue
            except Exception as e:
                why = f"error loading '{name}': {type(e).__name__}: {e}"
                raise InstantiationError(f"could not locate target '{path}': {why}") from e
        if obj is None:
            import builtins

            if len(parts) == 1 and hasattr(builtins, parts[0]):
                return getattr(builtins, parts[0])
            err = first_error or ModuleNotFoundError(f"No module named '{parts[0]}'")
            raise InstantiationError(
                f"could not locate target '{path}': {type(err).__name__}: {err}"
            ) from err
        parts = parts[n:]
    for i, attr in enumerate(parts):
        try:
            obj = getattr(obj, attr)
        except AttributeError as e:
            done = ".".join(parts[:i])
            raise InstantiationError(
                f"could not locate target '{path}': {type(e).__name__}: {e}"
                + (f" (resolved up to '{done}')" if done else "")
            ) from e
    return obj


def _merge(base: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _build(node: Any, key: str, recursive: bool, convert: str) -> Any:
    if isinstance(node, str) and node == "???":
        raise InstantiationError(f"Missing mandatory value: {key or '<root>'}")
    if isinstance(node, Mapping):
        if "_target_" in node:
            return _call(node, key, recursive, convert)
        if not recursive:
            return dict(node)
        return {
            k: _build(v, f"{key}.{k}" if key else str(k), recursive, convert)
            for k, v in node.items()
        }
    if isinstance(node, (list, tuple)):
        if not recursive:
            return list(node)
        return [_build(v, f"{key}[{i}]", recursive, convert) for i, v in enumerate(node)]
    return node


def _call(node: Mapping[str, Any], key: str, recursive: bool, convert: str) -> Any:
    shared = node.get(_SINGLETON)
    cache = _singletons.get()
    if shared is not None and cache is not None:
        if shared not in cache:
            cache[shared] = _call_fresh(node, key, recursive, convert)
        return cache[shared]
    return _call_fresh(node, key, recursive, convert)


def _call_fresh(node: Mapping[str, Any], key: str, recursive: bool, convert: str) -> Any:
    recursive = bool(node.get("_recursive_", recursive))
    convert = str(node.get("_convert_", convert)).lower()
    if convert not in _CONVERT:
        raise InstantiationError(
            f"{key or '<root>'}: _convert_ must be one of {sorted(_CONVERT)}, got {convert!r}"
        )
    target = node["_target_"]
    fn = target if callable(target) else locate(target)
    args = node.get("_args_", [])
    kwargs = {k: v for k, v in node.items() if k not in _SPECIAL}
    if recursive:
        args = [
            _build(a, f"{key}._args_[{i}]" if key else f"_args_[{i}]", True, convert)
            for i, a in enumerate(args)
        ]
        kwargs = {
            k: _build(v, f"{key}.{k}" if key else k, True, convert) for k, v in kwargs.items()
        }
    else:
        for k, v in kwargs.items():
            if isinstance(v, str) and v == "???":
                raise InstantiationError(f"Missing mandatory value: {key + '.' if key else ''}{k}")
    if node.get("_partial_", False):
        return functools.partial(fn, *args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        where = f" at key '{key}'" if key else ""
        raise InstantiationError(
            f"Error in call to target '{target}'{where}:\n{type(e).__name__}({e})"
        ) from e


def instantiate(config: Any, *args: Any, **kwargs: Any) -> Any:
    """Builds the object described by ``config`` (a mapping with ``_target_``, or a container
    of them). Extra positional args are appended to ``_args_``; keyword args override the
    config's (nested mappings merge), including ``_partial_``, ``_recursive_``, ``_convert_``.
    """
    if config is None:
        return None
    token = _singletons.set({}) if _singletons.get() is None else None
    try:
        return _instantiate(config, args, kwargs)
    except RecursionError as err:
        # Errors raised by a target are wrapped in _call_fresh; this one is the config's nesting
        # (or a container that contains itself).
        raise InstantiationError(
            "config nests too deeply to instantiate (deeper than Python's recursion limit, "
            f"{sys.getrecursionlimit()}); flatten it or check for a container that contains itself"
        ) from err
    finally:
        if token is not None:
            _singletons.reset(token)


@contextlib.contextmanager
def shared_singletons() -> Iterator[None]:
    """Within this block, ``!singleton`` nodes are shared across several ``instantiate`` calls
    (``Project("train.yaml", ...)("a", "b")`` builds both targets with one set)."""
    token = _singletons.set({}) if _singletons.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _singletons.reset(token)


#: Deepest nesting ``instantiate`` builds (the builder recurses about five frames per level).
MAX_DEPTH = 100


def _check_depth(config: Any) -> None:
    """Refuses configs nested deeper than :data:`MAX_DEPTH` (or containing themselves) before
    any target is called; walks iteratively so the check itself cannot overflow."""
    stack: list[tuple[Any, int, tuple[int, ...]]] = [(config, 0, ())]
    deepest: dict[int, int] = {}  # shared subtrees are walked again only when found deeper
    while stack:
        node, depth, ancestors = stack.pop()
        if not isinstance(node, (Mapping, list, tuple)) or deepest.get(id(node), -1) >= depth:
            continue
        deepest[id(node)] = depth
        if id(node) in ancestors:
            raise InstantiationError("config contains itself (a cycle); it cannot be built")
        if depth > MAX_DEPTH:
            raise InstantiationError(
                f"config nests deeper than {MAX_DEPTH} levels; flatten it (instantiate builds "
                "nested configs recursively)"
            )
        children = node.values() if isinstance(node, Mapping) else node
        inner = (*ancestors, id(node)) if depth < 20 else ancestors
        stack.extend((c, depth + 1, inner) for c in children)


def _instantiate(config: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _check_depth(config)
    if isinstance(config, Mapping):
        node = _merge(config, kwargs) if kwargs else dict(config)
        if args:
            node["_args_"] = list(node.get("_args_", [])) + list(args)
        recursive = bool(node.get("_recursive_", True))
        convert = str(node.get("_convert_", "none"))
        return _build(node, "", recursive, convert)
    if isinstance(config, (list, tuple)):
        if args or kwargs:
            raise InstantiationError("instantiate(list, ...) takes no extra arguments")
        return _build(list(config), "", True, "none")
    raise InstantiationError(
        f"instantiate() expects a mapping or a list, got {type(config).__name__}"
    )
