"""Interpolation through the public compose() API: types, relative keys, resolvers, errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import glmx

TREE = Path(__file__).parent / "fixtures" / "hydra" / "interp"


def test_resolves_every_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMX_TEST_HOME", "/home/x")
    cfg = glmx.compose("config", [], TREE)
    assert cfg["model"] == {"kind": "tiny", "size": 8, "name": "tiny-8"}
    assert cfg["layers"] == 8 and isinstance(cfg["layers"], int)
    assert cfg["picked"] == "b"
    assert cfg["text"] == "size=8"
    assert cfg["escaped"] == "${model.size}"
    assert cfg["home"] == "/home/x"
    assert cfg["maybe"] == 42
    assert cfg["up"]["inner"]["v"] == 5
    assert cfg["job"] == "config"
    assert Path(cfg["out"]).is_absolute()
    assert cfg["today"] == str(dt.date.today().year)
    assert cfg["must"] == "???"
    assert "hydra" not in cfg


def test_env_default_and_override_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLMX_TEST_HOME", raising=False)
    cfg = glmx.compose("config", ["model.size=16", "sel=2", "must=ok"], TREE)
    assert (cfg["home"], cfg["layers"], cfg["picked"], cfg["must"]) == ("/fallback", 16, "c", "ok")


def test_hydra_node_on_request() -> None:
    cfg = glmx.compose("config", ["model.size=3"], TREE, return_hydra_config=True)
    assert cfg["hydra"]["job"]["name"] == "config"
    assert cfg["hydra"]["job"]["override_dirname"] == "model.size=3"
    assert cfg["hydra"]["runtime"]["choices"]["model"] == "small"
    assert cfg["hydra"]["overrides"]["task"] == ["model.size=3"]


def test_now_is_stable_within_a_run() -> None:
    a = glmx.compose("config", ["+t=${now:%H-%M-%S-%f}"], TREE)["t"]
    b = glmx.compose("config", ["+t=${now:%H-%M-%S-%f}"], TREE)["t"]
    assert a == b


def test_user_resolver() -> None:
    glmx.register_resolver("double", lambda x: x * 2, replace=True)
    assert glmx.compose("custom", [], TREE)["x"] == 42
    with pytest.raises(ValueError, match="already registered"):
        glmx.register_resolver("double", lambda x: x)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("cycle", "a -> b -> a"),
        ("badkey", "Interpolation key 'missing.key' not found"),
        ("needs", "Missing mandatory value: need"),
        ("env", "Environment variable 'GLMX_SURELY_UNSET_VAR' not found"),
    ],
)
def test_interpolation_errors(name: str, needle: str) -> None:
    with pytest.raises(glmx.ConfigError, match=None) as info:
        glmx.compose(name, [], TREE)
    assert needle in str(info.value)


def test_unresolved_keeps_text() -> None:
    cfg = glmx.compose("config", [], TREE, resolve=False)
    assert cfg["layers"] == "${model.size}"


def test_missing_primary_and_config_dir() -> None:
    with pytest.raises(glmx.ConfigCompositionError, match="Cannot find primary config 'nope'"):
        glmx.compose("nope", [], TREE)
    with pytest.raises(glmx.ConfigCompositionError, match="Primary config directory not found"):
        glmx.compose("config", [], TREE / "missing")


def test_override_parse_error_shows_position() -> None:
    with pytest.raises(glmx.OverrideError) as info:
        glmx.compose("config", ["sel=[1,2"], TREE)
    assert "'sel=[1,2'" in str(info.value) and "position" in str(info.value)
