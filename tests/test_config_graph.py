"""YAML tags, the node graph and materialization semantics through glmx.config.load."""

import functools
from collections import OrderedDict

import pytest

import glmx
from glmx import config


def test_singletons_shared_factories_fresh():
    g = config.load(
        "a: &a !singleton:dict {x: 1}\nf: &f !factory:dict {y: 2}\nmain: !tuple [*a, *a, *f, *f]\n"
    )
    a1, a2, f1, f2 = g.materialize()
    assert a1 is a2 and a1 == {"x": 1}
    assert f1 == f2 and f1 is not f2
    assert g.materialize()[0] is not a1  # each materialization builds fresh objects


def test_singleton_returning_none_is_called_once():
    calls = []
    g = config.load("s: &s !singleton:builtins:print []\nmain: [*s, *s]\n")
    import builtins

    orig = builtins.print
    builtins.print = lambda *a: calls.append(a)
    try:
        assert g.materialize() == [None, None]
    finally:
        builtins.print = orig
    assert len(calls) == 1


def test_partial_args_appended_kwargs_merged_and_not_cached():
    g = config.load("main: !partial:int {base: 2}\np: !lambda:pow [2]\n")
    parse = g.materialize()
    assert isinstance(parse, functools.partial)
    assert parse("101") == 5
    assert g.materialize("p")(5) == 32
    assert g.materialize() is not parse


def test_positional_arg_keys_sorted_numerically_and_literal_args():
    g = config.load(
        "main: !singleton:operator:sub {arg10: 1, arg2: 10}\n"
        "lit: !singleton:dict {args: [[[a, 1]]], kwargs: {b: 2}}\n"
        "scalar: !singleton:int '42'\n"
        "empty: !singleton:list []\n"
    )
    assert g.materialize() == 9
    assert g.materialize("lit") == {"a": 1, "b": 2}
    assert g.materialize("scalar") == 42
    assert g.materialize("empty") == []


def test_vars_with_defaults_and_unbound_error():
    g = config.load("main: !singleton:dict {a: !var a, b: !var {name: b, default: 16}}\n")
    assert g.materialize(a=1) == {"a": 1, "b": 16}
    assert g.materialize(a=1, b=2) == {"a": 1, "b": 2}
    with pytest.raises(glmx.ConfigError, match=r"<string>:1 \(key 'main.a'\).*'a' is not bound"):
        g.materialize()


def test_dlist_order_overrides_and_nulls():
    g = config.load("main: !dlist\n  a: 1\n  b: 2\n  c: 3\n  a: 10\n  b: null\n")
    assert g.materialize() == [10, 3]


def test_shared_containers_and_plain_alias_copies():
    g = config.load(
        "d: &d !dict {k: 1}\nl: &l !list [1]\np: &p {k: 1}\nmain: [*d, *d, *l, *l, *p, *p]\n"
    )
    d1, d2, l1, l2, p1, p2 = g.materialize()
    assert d1 is d2 and l1 is l2
    assert p1 == p2 and p1 is not p2  # plain YAML mappings are copied per alias (documented)


def test_merge_keys_and_definitions():
    g = config.load(
        ".base: &base {a: 1, b: 2}\n"
        "main: !singleton:collections:OrderedDict\n  <<: *base\n  b: 3\n  c: 4\n"
    )
    assert g.targets == ["main"]
    assert g.materialize() == OrderedDict(a=1, b=3, c=4)


def test_names_unique_and_in_yaml():
    g = config.load("main: !singleton:dict@foo {a: 1}\nb: !factory:dict@bar []\n")
    assert "!singleton:dict@foo" in g.to_yaml()
    with pytest.raises(glmx.ConfigError, match="'@foo' is already used"):
        config.load("a: !singleton:dict@foo []\nb: !singleton:dict@foo []\n")


def test_meta_passes_unmaterialized():
    g = config.load("main: !meta {x: !var v}\n")
    latent = g.materialize()
    assert isinstance(latent, config.Latent)
    assert latent.materialize(v=3) == {"x": 3}


def test_import_error_text_is_carried():
    g = config.load("main: !singleton:glmx_no_such_mod.x:Y []\n")
    with pytest.raises(
        glmx.ConfigError, match=r"<string>:1 \(key 'main'\).*No module named 'glmx_no_such_mod'"
    ):
        g.materialize()
    g = config.load("main: !singleton:os.path:no_such_attr []\n")
    with pytest.raises(glmx.ConfigError, match="no_such_attr"):
        g.materialize()


def test_user_exception_surfaces_unchanged_with_note():
    g = config.load("main: !singleton:int {arg0: 'x'}\n")
    with pytest.raises(ValueError) as info:
        g.materialize()
    assert any("!singleton:int" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a: !nosuchtag 1\n", "unknown tag '!nosuchtag'"),
        ("a: !singleton []\n", "needs a callable"),
        ("a:\n  b: !dict [1]\n", "'a.b'"),
        ("a: [1,\n", "<string>:"),
        ("a: *nope\n", "<string>:1"),
        ("a: !var {nam: x}\n", "!var takes"),
    ],
)
def test_yaml_errors_name_line_and_key(text, needle):
    with pytest.raises(glmx.ConfigError) as info:
        config.load(text)
    assert needle in str(info.value)


def test_core_tags_and_scalars():
    g = config.load("main: [!!str 1, !!float 2, 0x10, 1e-3, yes, ~, .inf]\n")
    assert g.materialize() == ["1", 2.0, 16, 0.001, "yes", None, float("inf")]


def test_code_builds_equivalent_objects():
    g = config.load(
        "s: &s !singleton:dict {n: !var {name: n, default: 2}}\n"
        "main: !singleton:collections:OrderedDict {a: *s, b: *s, p: !partial:pow [2]}\n"
    )
    ns = {}
    exec(g.code("main"), ns)
    built = ns["construct"](n=5)
    assert built["a"] is built["b"] and built["a"] == {"n": 5}
    assert built["p"](3) == 8
