"""Checks on what users submit: experiment names, overrides, path values.

A config is validated by composing it (``train.yaml`` + ``experiment=NAME`` + overrides) from
the server's config tree; the composition error (which names the key) becomes a 422. Overrides
may not move the run's output (``hydra.*``, ``paths.*``, ``ckpt_path``: the agent sets them),
may not name code to import (``_target_``), and path-like values must stay inside the runs or
data roots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import HTTPException

__all__ = ["RUN_KINDS", "check_experiment", "check_overrides", "compose_check"]

RUN_KINDS = ("train", "smoke")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_KEY = re.compile(r"^(\+\+|\+|~)?[A-Za-z0-9_][A-Za-z0-9_.\-/@]*$")
_RESERVED = ("hydra", "paths", "ckpt_path")
_SMOKE_KEYS = {"steps": int, "sleep": float, "fail_at": int, "checkpoint_every": int, "lr": float}


def _fail(field: str, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": msg, "type": "value_error"}])


def check_experiment(name: str) -> None:
    """An experiment is a config name in the tree: no absolute paths, no ``..``."""
    if not name or not _NAME.match(name) or ".." in name.split("/"):
        raise _fail("experiment", f"experiment '{name}' is not a config name (e.g. tiny_cpu)")


def _path_ok(value: str, roots: list[Path]) -> bool:
    v = value.strip().strip("'\"")
    if not ("/" in v or v.startswith((".", "~"))):
        return True
    if v.startswith("~") or ".." in Path(v).parts:
        return False
    if Path(v).is_absolute():
        p = Path(v).resolve()
        return any(p == r or r in p.parents for r in roots)
    return True


def check_overrides(overrides: list[str], kind: str, roots: list[Path]) -> None:
    """422 naming the override when it is malformed or not allowed."""
    for i, ov in enumerate(overrides):
        field = f"overrides[{i}]"
        if not isinstance(ov, str) or len(ov) > 1000:
            raise _fail(field, "an override is a string 'key=value' of at most 1000 characters")
        key, sep, value = ov.partition("=")
        if not sep and not key.startswith("~"):
            raise _fail(field, f"override '{ov}' has no '=' (write key=value)")
        if not _KEY.match(key):
            raise _fail(field, f"override key '{key}' is not a dotted config key")
        bare = key.lstrip("+~")
        if kind == "smoke":
            if bare not in _SMOKE_KEYS:
                raise _fail(field, f"smoke runs take {', '.join(_SMOKE_KEYS)}; got '{bare}'")
            try:
                _SMOKE_KEYS[bare](value)
            except ValueError:
                raise _fail(field, f"'{bare}' must be a number, got '{value}'") from None
            continue
        if bare.split(".")[0].split("/")[0] in _RESERVED:
            raise _fail(field, f"'{bare}' is set by the platform (run directory, resume)")
        if bare.split(".")[-1] in ("_target_", "_partial_", "_args_"):
            raise _fail(field, f"'{bare}': overrides may not name code to import")
        if not _path_ok(value, roots):
            raise _fail(
                field,
                f"'{bare}={value}': paths must stay inside the data or runs root "
                f"({', '.join(str(r) for r in roots)}); no '..' or '~'",
            )


def compose_check(
    configs_dir: Path | None, experiment: str, overrides: list[str]
) -> dict[str, Any]:
    """Composes ``train`` with the experiment and overrides; 422 with the composition error."""
    from glmx.errors import GlmxError
    from glmx.hydra.compose import compose_raw

    try:
        composed = compose_raw("train", [f"experiment={experiment}", *overrides], configs_dir)
        raw = composed.raw()
    except GlmxError as err:
        msg = str(err)
        field = "experiment" if f"experiment/{experiment}" in msg else "overrides"
        for i, ov in enumerate(overrides):
            key = ov.split("=", 1)[0].lstrip("+~")
            if field == "overrides" and f"'{key}'" in msg:
                field = f"overrides[{i}]"
        raise _fail(field, msg) from None
    raw.pop("hydra", None)
    return raw
