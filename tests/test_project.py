"""glmx.Project over the fixture template project: five levels of extends, inline templates,
super(), dlist overrides, shared singletons vs fresh factories, vars with defaults."""

import functools
from pathlib import Path

import pytest

import glmx

CHAIN = Path(__file__).parent / "fixtures" / "projects" / "chain"


@pytest.fixture(scope="module")
def proj():
    return glmx.Project("main.yaml", project_dir=CHAIN)


def test_rendered_text_matches_expected(proj):
    assert proj.pp() == (CHAIN / "expected" / "main.rendered.yaml").read_text()


def test_meta_and_targets(proj):
    assert proj.meta.name == "chain"
    assert proj.meta.description == "Fixture: FIVE levels of extends"
    assert proj.meta.default_config == "main.yaml"
    assert [Path(p).name for p in proj.meta.search_path] == ["templates", "parts", "chain"]
    assert "main.yaml" in proj.meta.configs
    assert proj.targets == ["model", "optimizer", "schedule", "lr", "callbacks", "main"]
    assert glmx.Project(project_dir=CHAIN).config == "configs/main.yaml"  # default_config


def test_main_materializes_with_shared_singletons(proj):
    main = proj()
    assert main["model"].kwargs["width"] == 32  # base 8 -> level1 16 -> config * 2
    assert main["model"].kwargs["act"] is main["act"]
    assert main["callbacks"] == [{"kind": "log", "level": "debug"}, {"kind": "ckpt", "every": 100}]
    one, two = main["two_logs"]
    assert one == two and one is not two and one[0] is not two[0]  # factories are fresh
    assert main["fresh"][0] is not main["fresh"][1]


def test_call_forms(proj):
    model = proj("model")
    model2, main = proj("model", "main")
    assert main["model"] is model2 and model2 is not model
    both = proj(["lr", "schedule"])
    assert both == {"lr": 0.001, "schedule": {"warmup": 10}}
    opt = proj("optimizer")
    assert isinstance(opt, functools.partial) and opt(2) == 6


def test_vars_bind_and_default(proj):
    assert proj("model").kwargs["depth"] == 2
    assert proj("model", depth=5).kwargs["depth"] == 5


def test_template_vars_reach_templates():
    proj = glmx.Project("main.yaml", project_dir=CHAIN, base_lr=0.5)
    assert proj("lr") == 0.5


def test_graph_and_code(proj):
    text = proj.graph()
    assert "model: &model !singleton:helpers.py:Box@model" in text
    ns = {}
    code = proj.code("main")
    exec(compile(code, "generated", "exec"), ns)
    import os

    cwd = os.getcwd()
    os.chdir(CHAIN)
    try:
        built = ns["construct"]()
    finally:
        os.chdir(cwd)
    assert built["model"].kwargs["act"] is built["act"]
    assert built["callbacks"] == proj()["callbacks"]


def test_missing_config_lists_available():
    with pytest.raises(glmx.ConfigError, match="available configs: .*main.yaml"):
        glmx.Project("nope.yaml", project_dir=CHAIN)


def test_import_failure_names_file_and_key():
    proj = glmx.Project("badimport.yaml", project_dir=CHAIN)
    with pytest.raises(
        glmx.ConfigError, match=r"badimport.yaml.*:2 \(key 'main.inner'\).*No module named"
    ):
        proj()


def test_project_without_meta(tmp_path):
    (tmp_path / "cfg.yaml").write_text("-- set n = 3\nmain: !singleton:dict {n: {{ n }}}\n")
    proj = glmx.Project("cfg.yaml", project_dir=tmp_path)
    assert proj() == {"n": 3}
