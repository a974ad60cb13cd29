"""Issue #14, config engine: every reproduction ends in a clear GlmxError (or a documented limit),
never a segfault, an abort, a hang or a traceback. Through the public API and the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cli_helpers import glmx as run_glmx

import glmx
from glmx import _config, config
from glmx.errors import ConfigError, GlmxError
from glmx.hydra import runner
from glmx.hydra.compose import compose
from glmx.hydra.instantiate import InstantiationError, instantiate


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _laughs(levels: int, fan: int = 10) -> str:
    lines = ["l0: &l0 [lol]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * fan)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


# -- item 1: stack overflows ---------------------------------------------------------------


def test_defaults_cycle_is_an_error(tmp_path: Path) -> None:
    r = _tree(
        tmp_path,
        {"train.yaml": "a: 1\n", "experiment/loop.yaml": "defaults:\n  - /experiment/loop\n"},
    )
    with pytest.raises(
        glmx.ConfigCompositionError, match="cycle: train -> experiment/loop -> experiment/loop"
    ):
        glmx.compose("train", ["+experiment=loop"], config_dir=r)


def test_long_interpolation_chain_is_a_limit(tmp_path: Path) -> None:
    def chain(n: int) -> str:
        return "".join(f"v{i}: ${{v{i + 1}}}\n" for i in range(n)) + f"v{n}: 1\n"

    r = _tree(tmp_path, {"ok.yaml": chain(400), "deep.yaml": chain(5000)})
    assert compose("ok", config_dir=r)["v0"] == 1
    with pytest.raises(ConfigError, match="GLMX_CONFIG_MAX_INTERPOLATION_DEPTH"):
        compose("deep", config_dir=r)


@pytest.mark.parametrize(("opener", "closer"), [("[", "]"), ("{a:", "}"), ("${", "}")])
def test_deeply_nested_override_is_an_error(tmp_path: Path, opener: str, closer: str) -> None:
    r = _tree(tmp_path, {"train.yaml": "a: 1\n"})
    t = time.process_time()
    with pytest.raises(GlmxError, match="GLMX_CONFIG_MAX_DEPTH"):
        compose("train", ["+x=" + opener * 7500 + closer * 7500], config_dir=r)
    with pytest.raises(GlmxError):
        compose("train", ["+x=" + opener * 7500], config_dir=r)
    assert time.process_time() - t < 2.0


def test_deep_yaml_is_an_error(tmp_path: Path) -> None:
    r = _tree(tmp_path, {"train.yaml": "a: " + "[" * 100_000 + "]" * 100_000 + "\n"})
    with pytest.raises(ConfigError, match="train.yaml:1: YAML error: .*(nesting|recursion)"):
        compose("train", config_dir=r)
    block = "".join(" " * i + "k:\n" for i in range(3000))
    (r / "block.yaml").write_text(block)
    with pytest.raises(ConfigError, match="block.yaml:.*YAML nesting exceeds the limit of 200"):
        compose("block", config_dir=r)
    with pytest.raises(ConfigError, match="nesting exceeds"):
        config.load(block)


# -- item 3: unbounded allocation --------------------------------------------------------------


def test_sweep_cartesian_product_is_refused(tmp_path: Path) -> None:
    r = _tree(tmp_path, {"train.yaml": "a: 1\n"})
    argv = ["-m", "+a=range(0,100000)", "+b=range(0,100000)"]
    with pytest.raises(
        glmx.OverrideError,
        match="10000000000 jobs, more than the limit of 10000.*GLMX_MAX_SWEEP_JOBS",
    ):
        runner.run(lambda cfg: None, argv, config_path=r, config_name="train")
    with pytest.raises(glmx.OverrideError, match="GLMX_MAX_SWEEP_JOBS"):
        _config.sweep_jobs(["a=range(0,9000000000000000000)"], [])
    with pytest.raises(glmx.OverrideError, match="10000000000 jobs"):
        _config.sweep_jobs(argv[1:], [], max_jobs=1_000_000)
    assert len(_config.sweep_jobs(["a=range(0,20000)"], [], max_jobs=20_000)) == 20_000


def test_billion_laughs_in_compose(tmp_path: Path) -> None:
    r = _tree(tmp_path, {"train.yaml": _laughs(9)})
    t = time.process_time()
    with pytest.raises(ConfigError, match="expanding YAML aliases exceeds.*ALIAS_NODES"):
        compose("train", config_dir=r)
    assert time.process_time() - t < 2.0
    small = _tree(tmp_path / "s", {"train.yaml": _laughs(3)})
    assert len(compose("train", config_dir=small)["l3"]) == 10


def test_billion_laughs_in_templates() -> None:
    t = time.process_time()
    with pytest.raises(ConfigError, match="ALIAS_NODES"):
        config.load(_laughs(7))
    assert time.process_time() - t < 2.0
    g = config.load(_laughs(2))
    assert len(g.materialize("l2")) == 10
    assert "def construct" in g.code("l2")


# -- item 4: linear time -------------------------------------------------------------------------


def test_resolve_is_linear(tmp_path: Path) -> None:
    items = "".join(f"  - s{i}\n" for i in range(100_000))
    r = _tree(tmp_path, {"train.yaml": "x: ${l[5]}\nl:\n" + items})
    t = time.process_time()
    out = compose("train", config_dir=r)
    assert out["x"] == "s5" and len(out["l"]) == 100_000
    assert time.process_time() - t < 5.0


def test_override_with_nested_brackets_is_fast(tmp_path: Path) -> None:
    r = _tree(tmp_path, {"train.yaml": "a: 1\n"})
    t = time.process_time()
    out = compose("train", ["+x=" + "[" * 150 + "]" * 150], config_dir=r)
    assert isinstance(out["x"], list)
    with pytest.raises(GlmxError):
        compose("train", ["+x=" + "[" * 1000], config_dir=r)
    assert time.process_time() - t < 2.0


# -- item 5: command-line values are data ------------------------------------------------------


def _project(root: Path) -> Path:
    return _tree(
        root,
        {
            "meta.yaml": "name: p\ndefault_config: m.yaml\n",
            "configs/m.yaml": "model: !singleton:dict\n  n_layers: {{ n_layers }}\n",
            "outside.yaml": "secret: 1\n",
        },
    )


def test_template_variable_cannot_inject_yaml(tmp_path: Path) -> None:
    p = _project(tmp_path / "proj")
    value = '"2\\n  x: !singleton:os:system [\\"echo INJECTED >&2\\"]"'
    r = run_glmx("-p", str(p), "construct", "--target", "model", f"n_layers={value}")
    assert "INJECTED" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    assert "!singleton:os:system" in r.stdout  # the value stayed one string
    tagged = "!singleton:os:system ['echo INJECTED']"
    assert config.render("n: {{ v }}\n", v=tagged) == f'n: "{tagged}"\n'
    assert config.render("n: {{ v }}\n", v="plain-text_1") == "n: plain-text_1\n"


# -- item 10: path traversal ---------------------------------------------------------------------


def test_config_names_stay_inside(tmp_path: Path) -> None:
    p = _project(tmp_path / "proj")
    r = run_glmx("-p", str(p), "-t", "../../../../etc/passwd", "pp")
    assert r.returncode == 2 and "root:" not in r.stdout
    assert "leaves the config search path" in r.stderr and "Traceback" not in r.stderr
    r = run_glmx("-p", str(p), "-t", "../../../../etc/passwd", "pp", "-d")
    assert r.returncode == 2 and "root:" not in r.stdout, r.stdout
    c = _tree(tmp_path / "c", {"train.yaml": "a: 1\n", "experiment/x.yaml": "b: 1\n"})
    _tree(tmp_path, {"outside.yaml": "secret: 1\n"})
    with pytest.raises(GlmxError, match="leaves the config search path"):
        compose("train", ["+experiment=../../outside"], config_dir=c)
    with pytest.raises(ConfigError, match="leaves the config search path"):
        config.render("{% include '../outside.yaml' %}", search_path=[c])


# -- item 11: exception types --------------------------------------------------------------------


def test_instantiate_depth_is_a_glmx_error() -> None:
    node: dict = {"_target_": "builtins.dict"}
    for _ in range(5000):
        node = {"_target_": "builtins.dict", "x": node}
    with pytest.raises(InstantiationError, match="nests deeper than 100 levels"):
        instantiate(node)
    loop: list = []
    loop.append(loop)
    with pytest.raises(InstantiationError, match="contains itself"):
        instantiate([loop])


def test_lone_surrogates_are_glmx_errors(tmp_path: Path) -> None:
    r = _tree(tmp_path, {"train.yaml": "a: 1\n"})
    with pytest.raises(GlmxError, match="not valid UTF-8"):
        compose("train", ["a=\udcff"], config_dir=r)
    with pytest.raises(GlmxError, match="not valid UTF-8"):
        config.render("a: \udcff\n")
    with pytest.raises(GlmxError, match="not valid UTF-8"):
        config.render("a: {{ v }}\n", v="\ud800")
    with pytest.raises(GlmxError, match="not valid UTF-8"):
        _config.sweep_jobs(["a=\udcff,1"], [])


def test_rust_panic_becomes_glmx_error() -> None:
    with pytest.raises(ConfigError, match="internal error.*boom"):
        _config._panic_in_guard("boom")


# -- item 12: CLI errors -------------------------------------------------------------------------


def test_ls_with_non_utf8_config(tmp_path: Path) -> None:
    p = _project(tmp_path / "proj")
    (p / "configs" / "bad.yaml").write_bytes(b"# caf\xe9\nx: \xff\xfe\n")
    r = run_glmx("-p", str(p), "ls")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if "bad.yaml" in x)
    assert "PARSE ERROR" in line and "bad.yaml" in line


def test_pp_with_invalid_yaml_variable(tmp_path: Path) -> None:
    p = _project(tmp_path / "proj")
    r = run_glmx("-p", str(p), "pp", "n_layers=[1, 2")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "template variable 'n_layers'" in r.stderr and "not valid YAML" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
