"""Template rendering through the public API: line syntax, blocks, inline templates, errors."""

from pathlib import Path

import pytest

import glmx
from glmx import config

FIXTURES = Path(__file__).parent / "fixtures" / "projects"


def test_plain_yaml_renders_to_itself():
    text = "a: 1\nb: [1, 2]\n<<: *x\n---\nc: 'x##y'\n"
    assert config.render(text) == text
    assert config.preprocess(text) == text


def test_line_syntax_translation_keeps_line_count():
    text = "-- set x = 1\n<< if x\n>> endif\n== x\n=> x\n## note\nk: v  ## trailing\n"
    out = config.preprocess(text)
    assert out.splitlines() == [
        "{% set x = 1 %}",
        "{%- if x %}",
        "{% endif -%}",
        "{{ x }}",
        "{{ x | trim('\\n') }}",
        "{# note #}",
        "k: v",
    ]


def test_render_with_vars_namespace_and_toyaml():
    text = (
        "-- set ns = namespace(n=2)\n"
        "-- for i in range(3)\n"
        "-- set ns.n = ns.n + i\n"
        "-- endfor\n"
        "n: {{ ns.n * k }}\n"
        "items: {{ {'a': [1, 'x y']} | toyaml }}\n"
    )
    assert config.render(text, k=10) == 'n: 50\nitems: {a: [1, "x y"]}\n'


def test_block_shorthand_and_super(tmp_path):
    (tmp_path / "base.yaml").write_text("[head]\na: 1\n[body]\nb: 2\n")
    child = '-- extends "base.yaml"\n[body]\n== super()\nc: 3\n'
    assert config.render(child, search_path=[tmp_path]) == "a: 1\nb: 2\n\nc: 3\n"


def test_inline_templates_one_parent_each(tmp_path):
    (tmp_path / "p1.yaml").write_text("[x]\nx: 1\n")
    (tmp_path / "p2.yaml").write_text("[y]\ny: 1\n")
    text = (
        '-- extends "p1.yaml"\n[x]\nx: 2\n-- include "sub"\n'
        '#----- sub -----\n-- extends "p2.yaml"\n[y]\ny: 2\n'
    )
    assert config.render(text, search_path=[tmp_path]) == "x: 2\ny: 2\n"


def test_globals_available():
    out = config.render(
        "{{ joinpath('a', 'b') }} {{ normpath('a/./b/..') }} {{ basename('x/y.z') }}"
    )
    assert out == "a/b a y.z"
    assert config.render("{{ getenv('GLMX_SURELY_UNSET', 'd') }}") == "d"
    assert len(config.render("{{ isotime() }}")) == 19


def test_undefined_variable_names_variable_line_and_chain(tmp_path):
    proj = FIXTURES / "chain"
    with pytest.raises(glmx.ConfigError) as info:
        glmx.Project("broken_undefined.yaml", project_dir=proj)
    msg = str(info.value)
    assert "broken_undefined.yaml:3" in msg
    assert "missing_width" in msg
    assert "base.yaml" in msg  # the template chain


def test_error_line_points_into_user_file_after_translation():
    text = "## c\n-- set a = 1\n\nx: {{ nope }}\n"
    with pytest.raises(glmx.ConfigError, match=r"<string>:4: .*'nope'"):
        config.render(text)


def test_inheritance_cycle_is_reported():
    with pytest.raises(
        glmx.ConfigError,
        match="cycle: configs/cycle.yaml -> loop_a.yaml -> loop_b.yaml -> loop_a.yaml",
    ):
        glmx.Project("cycle.yaml", project_dir=FIXTURES / "chain")


def test_self_extending_shadowed_name_is_a_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text('-- extends "a.yaml"\n')
    with pytest.raises(glmx.ConfigError, match="cycle"):
        config.render('-- extends "a.yaml"\n', search_path=[tmp_path])


def test_include_recursion_is_an_error_not_a_crash(tmp_path):
    (tmp_path / "r.yaml").write_text('-- include "r.yaml"\n')
    with pytest.raises(glmx.ConfigError):
        config.render('-- include "r.yaml"\n', search_path=[tmp_path])


def test_missing_template_lists_search_path(tmp_path):
    with pytest.raises(glmx.ConfigError, match="search path"):
        config.render('-- extends "nowhere.yaml"\n', search_path=[tmp_path])
