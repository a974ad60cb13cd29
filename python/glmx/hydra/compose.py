"""``compose()``: a Hydra config tree to plain Python containers, interpolations resolved.

Pipeline (all but the resolvers in Rust): defaults lists over the search path -> command-line
overrides -> ``${...}`` interpolation. The ``hydra`` node is composed too, so
``${hydra:runtime.output_dir}`` and ``${hydra:job.name}`` resolve from Python as well (Hydra
itself fails there with "HydraConfig was not set").
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from glmx import _config as _native

#: Where glmx ships config groups (``hydra/*``) that users' trees may name.
PACKAGE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: The primary config directory when none is given: ``./configs`` if it exists, else the
#: shipped tree (so ``python -m glmx.train experiment=...`` works in an empty directory).
DEFAULT_CONFIG_DIR = "configs"


def primary_dir(
    config_dir: str | os.PathLike[str] | None,
) -> str | os.PathLike[str] | None:
    """``config_dir``, or ``None`` when it is the default ``configs`` and that does not exist."""
    if config_dir == DEFAULT_CONFIG_DIR and not Path(config_dir).is_dir():
        return None
    return config_dir


def shipped_configs() -> Path | None:
    """The experiment tree glmx ships (``train.yaml``, ``experiment/``, ``model/``, ...).

    In a source checkout that is the repository's ``configs/`` (edits show at once); in an
    installed wheel the copy the build put in ``glmx/_configs``.
    """
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs").is_dir():
        return checkout / "configs"
    copy = package / "_configs"
    return copy if copy.is_dir() else None


_BUILTIN = {
    "oc.env",
    "oc.select",
    "oc.create",
    "oc.decode",
    "oc.dict.keys",
    "oc.dict.values",
    "hydra",
}
_RESOLVERS: dict[str, Callable[..., Any]] = {}
# `${now:...}` is stable within one run (one process, or one runner job).
_RUN_START = _dt.datetime.now()


def _now(pattern: str = "%Y-%m-%d_%H-%M-%S") -> str:
    return _RUN_START.strftime(pattern)


def reset_clock() -> None:
    """Starts a new run for ``${now:...}`` (the runner calls this once per launch).

    ``GLMX_RUN_START`` (an ISO timestamp) pins the clock: DDP ranks get rank 0's start time so
    they resolve the same output directory."""
    global _RUN_START
    pinned = os.environ.get("GLMX_RUN_START")
    _RUN_START = _dt.datetime.fromisoformat(pinned) if pinned else _dt.datetime.now()


def register_resolver(name: str, fn: Callable[..., Any], replace: bool = False) -> None:
    """Registers ``fn`` as the resolver ``${name:arg1,arg2}``.

    Arguments arrive resolved and typed (``1`` is an int, ``'1'`` a string). Registering a name
    twice raises ``ValueError`` unless ``replace=True``; built-in names cannot be replaced.
    """
    if name in _BUILTIN:
        raise ValueError(f"resolver '{name}' is built in and cannot be replaced")
    if name in _RESOLVERS and not replace:
        raise ValueError(
            f"resolver '{name}' is already registered (pass replace=True to replace it)"
        )
    if not callable(fn):
        raise TypeError(f"resolver '{name}' must be callable, got {type(fn).__name__}")
    _RESOLVERS[name] = fn


def resolvers() -> dict[str, Callable[..., Any]]:
    """The resolver table handed to the engine: ``now`` plus user resolvers."""
    table: dict[str, Callable[..., Any]] = {"now": _now}
    table.update(_RESOLVERS)
    return table


def search_path(
    config_dir: str | os.PathLike[str] | None, extra: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The config search path, first match wins.

    With a primary dir (``./configs`` or ``-cp``), as Hydra: that dir, glmx's ``hydra/*``
    groups, ``GLMX_CONFIG_PATH`` dirs, then ``extra`` (``-cd``/``--config-dir``); the tree glmx
    ships is not on it, so a project sees only its own configs. Without one, the shipped tree
    stands in for it, after ``extra`` and ``GLMX_CONFIG_PATH`` dirs so that their files shadow
    the shipped ones. ``python -m glmx.train --info searchpath`` prints the order."""
    config_dir = primary_dir(config_dir)
    added = [("command-line", str(Path(d).resolve())) for d in extra]
    env = os.environ.get("GLMX_CONFIG_PATH", "")
    env_dirs = [("env", str(Path(d).resolve())) for d in env.split(os.pathsep) if d]
    package = ("glmx", str(PACKAGE_CONFIGS))
    if config_dir is not None:
        return [("main", str(Path(config_dir).resolve())), package, *env_dirs, *added]
    shipped = shipped_configs()
    primary = [("glmx-configs", str(shipped))] if shipped is not None else []
    return [*added, *env_dirs, *primary, package]


def compose_raw(
    config_name: str | None,
    overrides: Sequence[str] = (),
    config_dir: str | os.PathLike[str] | None = "configs",
    *,
    extra_dirs: Iterable[str] = (),
    multirun: bool = False,
    job_name: str | None = None,
    job_num: int = 0,
    output_dir: str | None = None,
) -> Any:
    """Composes without resolving; returns the engine's ``ComposedConfig`` with ``hydra.job``
    and ``hydra.runtime`` filled in (``output_dir`` from ``hydra.run.dir`` unless given)."""
    config_dir = primary_dir(config_dir)
    if config_dir is not None and not Path(config_dir).is_dir():
        raise _native.ConfigCompositionError(
            f"Primary config directory not found: '{Path(config_dir).resolve()}'. "
            "Pass config_dir= (or -cp/--config-path) pointing at your configs."
        )
    sp = search_path(config_dir, extra_dirs)
    composed = _native.compose_config(config_name, sp, [str(o) for o in overrides], True, multirun)
    name = job_name or (Path(config_name).stem if config_name else "app")
    dirname = composed.override_dirname("=", ",", [])
    table = resolvers()
    cfg_od = composed.select("hydra.job.config.override_dirname", table) or {}
    if cfg_od:
        dirname = composed.override_dirname(
            str(cfg_od.get("kv_sep", "=")),
            str(cfg_od.get("item_sep", ",")),
            list(cfg_od.get("exclude_keys") or []),
        )
    for key, value in (
        ("hydra.mode", "MULTIRUN" if multirun else "RUN"),
        ("hydra.job.name", name),
        ("hydra.job.config_name", config_name),
        ("hydra.job.num", job_num),
        ("hydra.job.id", f"{job_num}" if multirun else "0"),
        ("hydra.job.override_dirname", dirname),
        ("hydra.runtime.cwd", os.getcwd()),
        ("hydra.runtime.choices", dict(composed.choices)),
        (
            "hydra.runtime.config_sources",
            [{"path": f"file://{d}", "provider": p, "schema": "file"} for p, d in sp],
        ),
        ("hydra.overrides.task", composed.task_overrides),
        ("hydra.overrides.hydra", composed.hydra_overrides),
    ):
        composed.set(key, value)
    if output_dir is None:
        if multirun:
            sweep = composed.select("hydra.sweep.dir", table)
            sub = composed.select("hydra.sweep.subdir", table)
            output_dir = os.path.join(str(sweep), str(sub))
        else:
            output_dir = str(composed.select("hydra.run.dir", table))
    composed.set("hydra.runtime.output_dir", str(Path(output_dir).resolve()))
    return composed


def compose(
    config_name: str | None,
    overrides: Sequence[str] = (),
    config_dir: str | os.PathLike[str] | None = "configs",
    return_hydra_config: bool = False,
    *,
    resolve: bool = True,
) -> dict[str, Any]:
    """Composes ``config_name`` from ``config_dir`` with Hydra override syntax.

    Returns plain dicts and lists with every ``${...}`` resolved (``resolve=False`` keeps them
    as written). ``???`` values stay ``'???'``; an interpolation that reads one raises
    ``glmx.ConfigError`` naming the full key. The ``hydra`` node is included only with
    ``return_hydra_config=True``.

    Example: ``glmx.compose("train", ["experiment=gpn", "trainer.max_epochs=3"])``.
    """
    composed = compose_raw(config_name, overrides, config_dir)
    skip = [] if return_hydra_config else ["hydra"]
    if resolve:
        return composed.resolve(resolvers(), skip)
    raw = composed.raw()
    for k in skip:
        raw.pop(k, None)
    return raw


def compose_project(
    config_name: str, config_dir: str | os.PathLike[str] = "configs", overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """The resolved job config of a Hydra tree, for ``glmx.Project`` on Hydra-style trees."""
    return compose(config_name, overrides, config_dir)


def is_hydra_tree(config_path: str | os.PathLike[str]) -> bool:
    """True when the primary config has a top-level ``defaults:`` list (a Hydra tree)."""
    try:
        text = Path(config_path).read_text()
    except OSError:
        return False
    return any(line.startswith("defaults:") for line in text.splitlines())
