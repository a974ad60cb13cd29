"""``python -m glmx.train`` / ``python -m glmx.eval`` on the shipped configs/ tree, and
``glmx.Project`` over the same Hydra tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import glmx

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    return tmp_path


def run(cwd: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_tiny_experiment_with_overrides(project):
    run(
        project,
        "-m",
        "glmx.train",
        "experiment=tiny_cpu",
        "trainer.max_epochs=2",
        "extras.print_config=false",
    )
    runs = list((project / "outputs").glob("*/*"))
    assert len(runs) == 1
    out = runs[0]
    cfg = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert cfg["trainer"]["max_epochs"] == 2 and cfg["seed"] == 12345
    assert (
        yaml.safe_load((out / ".hydra" / "overrides.yaml").read_text())[0] == "experiment=tiny_cpu"
    )
    records = [json.loads(x) for x in (out / "trainer_logs.json").read_text().splitlines()]
    assert any("val/loss" in r for r in records) and any("test/loss" in r for r in records)
    assert (out / "checkpoints" / "latest").exists()
    # evaluate the best checkpoint of that run
    best = sorted((out / "checkpoints").glob("checkpoint-*"))[-1]
    proc = run(
        project,
        "-m",
        "glmx.eval",
        "experiment=tiny_cpu",
        f"ckpt_path={best}",
        "extras.print_config=false",
    )
    assert "test/loss:" in proc.stdout


def test_two_value_sweep(project):
    run(
        project,
        "-m",
        "glmx.train",
        "-m",
        "experiment=tiny_cpu",
        "model.lr=0.01,0.05",
        "trainer.max_epochs=1",
        "test=false",
        "extras.print_config=false",
    )
    sweeps = list((project / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    assert (sweeps[0] / "multirun.yaml").exists()
    lrs = [
        yaml.safe_load((sweeps[0] / j / ".hydra" / "config.yaml").read_text())["model"]["lr"]
        for j in jobs
    ]
    assert lrs == [0.01, 0.05]


def test_cfg_job_prints_without_torch(project):
    code = (
        "import sys, runpy; sys.argv=['glmx.train','--cfg','job','experiment=tiny_cpu'];"
        "runpy.run_module('glmx.train', run_name='__main__');"
        "print('TORCH', 'torch' in sys.modules)"
    )
    proc = run(project, "-c", code)
    cfg = yaml.safe_load(proc.stdout.split("TORCH")[0])
    assert cfg["model"]["_target_"] == "glmx.examples.MLPRegressor"
    assert proc.stdout.strip().endswith("TORCH False")


def test_eval_with_a_mismatched_model_names_the_checkpoint(project):
    run(
        project,
        "-m",
        "glmx.train",
        "experiment=tiny_cpu",
        "trainer.max_epochs=1",
        "test=false",
        "extras.print_config=false",
    )
    best = sorted(project.glob("outputs/*/*/checkpoints/checkpoint-*"))[-1]
    proc = subprocess.run(
        [sys.executable, "-m", "glmx.eval", f"ckpt_path={best}", "extras.print_config=false"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "CheckpointError" in proc.stderr and "does not match MLPRegressor" in proc.stderr
    assert "size mismatch for net.0.weight" in proc.stderr


def test_sweep_without_multirun_is_an_error(project):
    proc = subprocess.run(
        [sys.executable, "-m", "glmx.train", "model.lr=0.01,0.05"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "--multirun" in proc.stderr or "-m" in proc.stderr


def test_project_api_on_the_hydra_tree(project):
    proj = glmx.Project(
        "train.yaml", project_dir=project / "configs", overrides=["experiment=tiny_cpu"]
    )
    assert {"model", "data", "trainer"} <= set(proj.targets)
    model, data = proj("model", "data")
    assert type(model).__name__ == "MLPRegressor" and model.hparams["hidden"] == 16
    assert proj("model") is not model  # fresh objects per call
    assert "glmx.examples.MLPRegressor(" in proj.code("model")
    assert "tiny" not in proj.meta.description and proj.meta.configs


def test_a_target_that_fails_to_build_is_one_line(tmp_path):
    """The instantiation error and its cause on one line (plus Hydra's hint), exit 2."""
    pytest.importorskip("transformers", reason="the image model is the vision extra")
    r = subprocess.run(
        [sys.executable, "-m", "glmx.train", "data=imagefolder", "model=hf_image"]
        + ["trainer=cpu", f"data.root={tmp_path / 'missing'}", "extras.print_config=false"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 2, r.stderr
    assert "Error in call to target 'glmx.models.HFImageClassifier'" in lines[0]
    assert "missing/train is not a directory" in lines[0] and "HYDRA_FULL_ERROR" in lines[1]


def test_a_config_without_model_data_trainer_is_one_line(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text("x: 1\n")
    r = subprocess.run(
        [sys.executable, "-m", "glmx.train", "-cn", "train"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no 'data', 'model', 'trainer' node(s)" in r.stderr.splitlines()[0]
