"""glmx.instantiate: _target_, _args_, _partial_, _recursive_, call-site kwargs, errors."""

from __future__ import annotations

import collections
import functools
from pathlib import Path

import pytest

import glmx
from glmx.hydra import InstantiationError


def test_target_kwargs_args_and_call_site_override() -> None:
    cfg = {"_target_": "collections.OrderedDict", "a": 1, "b": 2}
    obj = glmx.instantiate(cfg, b=3)
    assert isinstance(obj, collections.OrderedDict) and obj == {"a": 1, "b": 3}
    assert glmx.instantiate({"_target_": "builtins.divmod", "_args_": [7, 2]}) == (3, 1)
    assert glmx.instantiate({"_target_": "builtins.divmod", "_args_": [7]}, 3) == (2, 1)


def test_partial_and_recursive() -> None:
    p = glmx.instantiate({"_target_": "builtins.pow", "_partial_": True, "_args_": [2]})
    assert isinstance(p, functools.partial) and p(5) == 32
    nested = {
        "_target_": "builtins.dict",
        "inner": {"_target_": "pathlib.Path", "_args_": ["/tmp"]},
    }
    assert glmx.instantiate(nested)["inner"] == Path("/tmp")
    flat = glmx.instantiate({**nested, "_recursive_": False})
    assert flat["inner"] == {"_target_": "pathlib.Path", "_args_": ["/tmp"]}


def test_composed_config_instantiates(tmp_path: Path) -> None:
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "sgd.yaml").write_text("_target_: builtins.dict\nlr: 0.1\n")
    (tmp_path / "main.yaml").write_text(
        "defaults:\n  - opt: sgd\n  - _self_\nopt:\n  lr: ${scale}\nscale: 0.5\n"
    )
    cfg = glmx.compose("main", [], tmp_path)
    assert glmx.instantiate(cfg["opt"]) == {"lr": 0.5}


def test_errors_carry_key_and_import_error() -> None:
    with pytest.raises(InstantiationError, match="No module named 'no_such_pkg_xyz'"):
        glmx.instantiate({"_target_": "no_such_pkg_xyz.Thing"})
    with pytest.raises(InstantiationError, match="has no attribute 'Nope'"):
        glmx.instantiate({"_target_": "collections.Nope"})
    with pytest.raises(
        InstantiationError, match="Error in call to target 'builtins.int' at key 'child'"
    ) as info:
        glmx.instantiate(
            {"_target_": "builtins.dict", "child": {"_target_": "builtins.int", "_args_": ["x"]}}
        )
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(InstantiationError, match="Missing mandatory value: net.size"):
        glmx.instantiate({"_target_": "builtins.dict", "net": {"size": "???"}})
    assert isinstance(InstantiationError("x"), glmx.ConfigError)
