"""glmx.compose against hydra-core itself on fixture trees: same config, or the same error."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import glmx
from glmx.hydra.compose import PACKAGE_CONFIGS

hydra = pytest.importorskip("hydra", reason="hydra-core is the reference; install the test extras")
from hydra import compose as hydra_compose  # noqa: E402
from hydra import initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "hydra"


@pytest.fixture(scope="module")
def colorlog_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """hydra-core needs the hydra-colorlog plugin for LHT trees; give it glmx's copies."""
    root = tmp_path_factory.mktemp("colorlog")
    for group in ("hydra_logging", "job_logging"):
        d = root / "hydra" / group
        d.mkdir(parents=True)
        (d / "colorlog.yaml").write_text(
            (PACKAGE_CONFIGS / "hydra" / group / "colorlog.yaml").read_text()
        )
    return str(root)


def _hydra(tree: str, name: str, overrides: list[str], extra: str) -> object:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(FIXTURES / tree), version_base=None):
            cfg = hydra_compose(name, overrides=[*overrides, f"hydra.searchpath=[file://{extra}]"])
            return OmegaConf.to_container(cfg, resolve=False)
    except Exception as e:  # the reference's error, compared by message below
        return e
    finally:
        GlobalHydra.instance().clear()


def _glmx(tree: str, name: str, overrides: list[str], extra: str) -> object:
    try:
        return glmx.compose(
            name, [*overrides, f"hydra.searchpath=[file://{extra}]"], FIXTURES / tree, resolve=False
        )
    except glmx.ConfigError as e:
        return e


def _first_line(e: BaseException) -> str:
    return str(e).split("\nConfig search path")[0].strip()


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


CASES = [
    ("lht", "train", []),
    ("lht", "train", ["experiment=example"]),
    ("lht", "train", ["experiment=gpn", "trainer.max_epochs=5", "model.net.d_model=512"]),
    ("lht", "train", ["debug=fdr"]),
    ("lht", "train", ["debug=overfit", "callbacks=none"]),
    ("lht", "train", ["logger=many_loggers", "seed=7", "tags=[a,b]"]),
    ("lht", "train", ["trainer=ddp", "~callbacks.early_stopping", "+trainer.foo=1"]),
    ("lht", "train", ["data=[mnist,dna]", "~logger"]),
    ("lht", "train", ["++trainer.max_epochs=3", "++new.key={a:1,b:[1,2]}", "task_name='x,y'"]),
    (
        "lht",
        "train",
        ["trainer.min_epochs=1e-3", "ckpt_path=null", "data.batch_size=+5", "seed=1_000"],
    ),
    (
        "lht",
        "train",
        ["model.optimizer.lr=.5", "extras.print_config=FALSE", "task_name=1.2.3", "tags=0x10"],
    ),
    ("lht", "train", ["task_name=a\\,b", "+x=${paths.root_dir}/y", "+y='quoted ${a}'"]),
    ("lht", "eval", []),
    ("lht", "eval", ["ckpt_path=/tmp/x.ckpt", "trainer=gpu"]),
    ("features", "config", []),
    ("features", "config", ["experiment=big"]),
    ("features", "config", ["experiment=pkg"]),
    ("features", "config", ["extra=present"]),
    ("features", "config", ["db=postgres", "db/engine=slow"]),
    ("features", "config", ["db@backup=mysql", "server=nginx"]),
    ("features", "config", ["~db@backup", "~db"]),
    ("features", "config", ["schedule=[cosine]", "nested.b={c:5}", "items=[]"]),
    ("features", "self_first", []),
    ("features", "required", ["db=mysql"]),
    # errors: both must fail with the same message
    ("lht", "train", ["trainer.foo=1"]),
    ("lht", "train", ["+trainer.max_epochs=3"]),
    ("lht", "train", ["model=nope"]),
    ("lht", "train", ["~paths.nope"]),
    ("lht", "train", ["trainer.max_epochs=1,2"]),
    ("lht", "train", ["+experiment=gpn"]),
    ("lht", "train", ["model.optimizer={lr:0.1,x:[1,2]}"]),
    ("lht", "nope", []),
    ("features", "config", ["+extra=present"]),
    ("features", "required", []),
    ("features", "config", ["nogroup/x=1"]),
]


@pytest.mark.parametrize(("tree", "name", "overrides"), CASES)
def test_matches_hydra(tree: str, name: str, overrides: list[str], colorlog_dir: str) -> None:
    want = _hydra(tree, name, overrides, colorlog_dir)
    got = _glmx(tree, name, overrides, colorlog_dir)
    if isinstance(want, BaseException):
        assert isinstance(got, BaseException), f"hydra failed with {want!r}, glmx returned a config"
        assert _first_line(got) == _first_line(want)
    else:
        assert not isinstance(got, BaseException), f"glmx failed: {got}"
        assert _same(got, want)


@pytest.mark.parametrize("overrides", [[], ["model.size=3", "sel=0"], ["+extra=${model.name}/x"]])
def test_resolved_matches_omegaconf(overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMX_TEST_HOME", "/h")
    # hydra-core cannot resolve ${hydra:...} / ${now:...} outside a run, nor an int as a nested
    # key (${choices[${sel}]}, which glmx supports): compare the rest.
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(FIXTURES / "interp"), version_base=None):
        raw = OmegaConf.to_container(hydra_compose("config", overrides=overrides), resolve=False)
    GlobalHydra.instance().clear()
    for key in ("out", "job", "today", "picked"):
        raw.pop(key)
    want = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    got = glmx.compose("config", overrides, FIXTURES / "interp")
    for key in ("out", "job", "today", "picked"):
        got.pop(key)
    assert _same(got, want)
