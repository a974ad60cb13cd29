"""A Hydra-composed config may mix `_target_` nodes with template-style YAML tags."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

import glmx

TREE = Path(__file__).parent / "fixtures" / "hydra" / "mixed" / "configs"


def test_tags_become_instantiable_nodes():
    cfg = glmx.compose("train", config_dir=TREE)
    model = glmx.instantiate(cfg["model"])
    assert isinstance(model["encoder"], collections.OrderedDict)
    # one singleton per instantiate call, shared by every alias
    assert model["decoder"]["encoder"] is model["encoder"] is model["decoder"]["again"]
    assert model["square"](5) == 32  # partial(pow, 2): call args are appended
    assert model["pair"] == (1, 3)  # interpolation resolved inside the tagged node
    assert model["layers"] == [1, 3]
    assert model["counter"] == collections.Counter("abca")
    again = glmx.instantiate(cfg["model"])
    assert again["encoder"] is not model["encoder"], "a new call builds new singletons"


def test_project_shares_singletons_across_targets_of_one_call():
    proj = glmx.Project("train.yaml", project_dir=TREE)
    (model,) = (proj("model"),)
    assert model["decoder"]["encoder"] is model["encoder"]


def test_template_only_tags_are_explained(tmp_path):
    (tmp_path / "train.yaml").write_text("defaults:\n  - _self_\nx: !var width\n")
    with pytest.raises(glmx.ConfigError, match=r"train.yaml:3.*!var is for template projects"):
        glmx.compose("train", config_dir=tmp_path)
