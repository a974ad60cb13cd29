"""Image classification end to end: `glmx data digits`, HFImageClassifier (from config, local
pretrained directory, offline hub miss, frozen backbone), metrics against scikit-learn, the
platform's run fields, and a short `python -m glmx.train experiment=image_digits_cpu`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import glmx, ok

from glmx.errors import ConfigError

pytest.importorskip("transformers", reason="transformers is the vision extra (glmx[vision])")
pytest.importorskip("sklearn", reason="scikit-learn is the vision extra (glmx[vision])")

from glmx.data import ImageFolderDataModule  # noqa: E402
from glmx.image import classification_metrics, config_from_fields, confusion_matrix  # noqa: E402
from glmx.models import HFImageClassifier  # noqa: E402

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("img") / "digits"
    text = ok("data", "digits", str(out))
    assert re.search(r"train\s+1259 images", text), text
    return out


def test_digits_folder_is_the_real_data_set(digits: Path) -> None:
    counts = {s: len(list((digits / s).glob("*/*.png"))) for s in ("train", "val", "test")}
    assert counts == {"train": 1259, "val": 269, "test": 269}
    assert sorted(p.name for p in (digits / "val").iterdir()) == CLASSES
    from PIL import Image
    from sklearn.datasets import load_digits

    img = Image.open(next((digits / "test" / "3").glob("*.png")))
    assert img.size == (32, 32) and img.mode == "L"
    row = int(next((digits / "test" / "3").glob("*.png")).stem)
    assert load_digits().target[row] == 3
    r = glmx("data", "digits", str(digits / "train"))
    assert r.returncode == 2 and "not a digits folder" in r.stderr


def test_metrics_match_scikit_learn() -> None:
    from sklearn import metrics

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (300,), generator=g)
    p = torch.where(torch.rand(300, generator=g) < 0.6, y, torch.randint(0, 5, (300,), generator=g))
    p[p == 4] = 3  # class 4 never predicted: precision 0 (zero_division=0)
    cm = confusion_matrix(p, torch.cat([y[:-5], torch.full((5,), -100)]), 5)
    keep = slice(0, 295)
    assert cm.tolist() == metrics.confusion_matrix(y[keep], p[keep], labels=range(5)).tolist()
    m = classification_metrics(cm)
    assert abs(float(m["accuracy"]) - metrics.accuracy_score(y[keep], p[keep])) < 1e-12
    f1 = metrics.f1_score(y[keep], p[keep], average="macro", zero_division=0)
    assert abs(float(m["f1_macro"]) - f1) < 1e-12
    prec = metrics.precision_score(y[keep], p[keep], average=None, zero_division=0)
    rec = metrics.recall_score(y[keep], p[keep], average=None, zero_division=0)
    assert torch.allclose(m["precision"], torch.tensor(prec, dtype=torch.float64))
    assert torch.allclose(m["recall"], torch.tensor(rec, dtype=torch.float64))


def test_models_from_config_and_local_pretrained_dir(tmp_path: Path, digits: Path) -> None:
    for flavour in ("tiny-resnet", "tiny-vit", "tiny-convnext"):
        m = HFImageClassifier(flavour, data_root=str(digits), image_size=32)
        assert m.classes == CLASSES
        assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
        assert m.model.config.id2label[3] == "3" and m.model.config.label2id["7"] == 7
    # a "pretrained" local directory with other labels: weights load, the head is resized
    src = HFImageClassifier("tiny-vit", classes=["x", "y"], image_size=32)
    src.model.save_pretrained(tmp_path / "vit")
    m = HFImageClassifier(
        str(tmp_path / "vit"), classes=CLASSES, load_pretrained=True, freeze_backbone=True
    )
    a = src.model.vit.embeddings.patch_embeddings.projection.weight
    assert torch.equal(m.model.vit.embeddings.patch_embeddings.projection.weight, a)
    trainable = {n for n, p in m.model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_offline_hub_miss_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="not in the Hugging Face cache.*cannot be downloaded"):
        HFImageClassifier("google/vit-base-patch16-224", classes=CLASSES, load_pretrained=True)
    with pytest.raises(ConfigError, match="load_pretrained=false"):
        HFImageClassifier("tiny-vit", classes=CLASSES, load_pretrained=True)


def test_platform_fields_map_to_overrides_that_compose(tmp_path: Path) -> None:
    fields = {
        "root": "/data/flowers",
        "model_flavour": "tiny-vit",
        "batch_size": 16,
        "epochs": 3,
        "lr": 0.0005,
        "load_pretrained": False,
        "freeze_backbone": True,
        "monitor_metric": "val_accuracy",
        "monitor_mode": "max",
        "tb_root": "/runs/tb",
        "ckpt_dir": "/runs/ckpt",
    }
    overrides = config_from_fields(fields)
    code = (
        "import sys, runpy; sys.argv=['glmx.train','--cfg','job',*sys.argv[1:]];"
        "runpy.run_module('glmx.train', run_name='__main__')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *overrides], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    import yaml

    cfg = yaml.safe_load(r.stdout)
    assert cfg["data"]["root"] == "/data/flowers" and cfg["data"]["batch_size"] == 16
    assert cfg["model"]["model_flavour"] == "tiny-vit" and cfg["model"]["lr"] == 0.0005
    assert cfg["model"]["freeze_backbone"] is True and cfg["model"]["load_pretrained"] is False
    assert cfg["trainer"]["max_epochs"] == 3
    ck = cfg["callbacks"]["model_checkpoint"]
    assert (ck["monitor"], ck["mode"], ck["dirpath"]) == ("val/accuracy", "max", "/runs/ckpt")
    assert cfg["logger"]["tensorboard"]["save_dir"] == "/runs/tb"
    assert cfg["optimized_metric"] == "val/accuracy"
    with pytest.raises(ConfigError, match="unknown image run field"):
        config_from_fields({"rooot": "x"})
    with pytest.raises(ConfigError, match="'batch_size' must be an integer"):
        config_from_fields({"batch_size": "16"})
    with pytest.raises(ConfigError, match="monitor_metric 'bleu'"):
        config_from_fields({"monitor_metric": "bleu"})


def test_datamodule_keeps_training_classes(digits: Path) -> None:
    dm = ImageFolderDataModule(digits, image_size=32, batch_size=64)
    assert dm.classes == CLASSES and len(dm.train_dataloader()) == 20
    assert dm.val_dataloader().num_samples == 269 and not dm.val_dataloader().train


@pytest.mark.slow
def test_short_digits_experiment_learns_and_logs_confusion(tmp_path: Path) -> None:
    """`python -m glmx.train experiment=image_digits_cpu`, 3 epochs instead of 8, from an empty
    directory: the data are written on first use, before the model reads its classes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.train",
            "experiment=image_digits_cpu",
            "trainer.max_epochs=3",
            "hydra.run.dir=run",
            "extras.print_config=false",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "data" / "digits" / "train" / "9").is_dir()
    acc = float(re.search(r"test/accuracy\s+([0-9.]+)", r.stdout).group(1))
    assert acc >= 0.85, r.stdout[-2000:]
    run = tmp_path / "run"
    conf = sorted(run.rglob("confusion/test-step*.json"))
    assert conf, "the test confusion matrix is written as numbers"
    doc = json.loads(conf[-1].read_text())
    assert sum(map(sum, doc["matrix"])) == 269 and doc["classes"] == CLASSES
    events = b"".join(p.read_bytes() for p in run.rglob("events.out.tfevents.*"))
    assert b"val/confusion_matrix" in events and b"\x89PNG" in events, "confusion image in TB"
    assert b"val/accuracy" in events
    assert list(run.rglob("checkpoints/checkpoint-*")), "best checkpoint by val/accuracy"


def test_folder_without_test_split_trains_and_skips_testing(tmp_path: Path) -> None:
    """docs/images.md: `test/` is optional. With the default `test=true` the run still ends
    with rc 0 and says why it did not test (before: TrainError after a finished training)."""
    from PIL import Image

    for split, n in (("train", 4), ("val", 2)):
        for label, shade in (("dark", 30), ("light", 220)):
            folder = tmp_path / "ds" / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (12, 10), (shade, shade + i, shade)).save(folder / f"{i}.png")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.train",
            "data=imagefolder",
            "model=hf_image",
            "trainer=cpu",
            f"data.root={tmp_path / 'ds'}",
            "data.image_size=16",
            "data.batch_size=4",
            "trainer.max_epochs=1",
            "hydra.run.dir=run",
            "extras.print_config=false",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "has no test data: testing skipped" in r.stdout + r.stderr
    assert list((tmp_path / "run").rglob("checkpoints/checkpoint-*")), "the training ran"
