"""What an installed glmx relies on beyond its code: the config search path with the shipped
tree, optional dependencies named by their extra, the torch-first load of glmx._glmx.

The wheel itself (built, installed in a fresh venv, run from an empty directory) is checked by
`.ci/wheel-smoke.sh` (`make test-wheel`), which CI runs after this suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_helpers import glmx

from glmx.hydra.compose import compose, search_path, shipped_configs


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "glmx.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_empty_directory_composes_the_shipped_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose("train", ["experiment=gpn_tiny_cpu", "trainer.max_steps=20"])
    assert cfg["task_name"] == "gpn_tiny_cpu"
    assert cfg["trainer"]["max_steps"] == 20
    r = _train("--info", "searchpath", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"provider=glmx-configs, path=file://{shipped_configs()}" in r.stdout
    assert "provider=main" not in r.stdout  # no ./configs here


def _user_tree(root: Path, task_name: str, primary: bool = False) -> Path:
    exp = root / "experiment"
    exp.mkdir(parents=True)
    (exp / "gpn_tiny_cpu.yaml").write_text(f"# @package _global_\ntask_name: {task_name}\n")
    if primary:
        (root / "train.yaml").write_text(
            "defaults:\n  - _self_\n  - experiment: null\ntask_name: base\n"
        )
    return root


def test_cd_dirs_shadow_the_shipped_tree(tmp_path):
    cd_dir = _user_tree(tmp_path / "extra", "from_cd")
    r = _train("--cfg", "job", "-cd", str(cd_dir), "experiment=gpn_tiny_cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "task_name: from_cd" in r.stdout
    assert "gradient_clip_val" in r.stdout  # the rest comes from the shipped tree


def test_a_project_tree_replaces_the_shipped_one(tmp_path):
    # as in Hydra, ./configs (or -cp) is the tree: shipped configs do not leak into its groups
    _user_tree(tmp_path / "configs", "from_cwd", primary=True)
    r = _train("--cfg", "job", "experiment=gpn_tiny_cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "task_name: from_cwd" in r.stdout
    assert "gradient_clip_val" not in r.stdout
    r = _train("--cfg", "job", "experiment=tiny_cpu", cwd=tmp_path)
    assert r.returncode != 0 and "tiny_cpu" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    cp = str(tmp_path / "configs")
    r = _train("--cfg", "job", "-cp", cp, "experiment=gpn_tiny_cpu", cwd=empty)
    assert r.returncode == 0, r.stderr
    assert "task_name: from_cwd" in r.stdout


def test_search_path_order(tmp_path, monkeypatch):
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    with_main = [p for p, _ in search_path(tmp_path / "c", [str(tmp_path / "d")])]
    assert with_main == ["main", "glmx", "command-line"]
    without = [p for p, _ in search_path("configs", [str(tmp_path / "d")])]
    assert without == ["command-line", "glmx-configs", "glmx"]


def test_missing_explicit_config_path_is_an_error(tmp_path):
    r = _train("-cp", str(tmp_path / "nope"), "--cfg", "job", cwd=tmp_path)
    assert r.returncode != 0
    assert "Primary config directory not found" in r.stderr


def test_missing_optional_dependency_names_the_extra(tmp_path):
    # a stand-in for an environment without matplotlib: the import fails as it would there
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    log = tmp_path / "run" / "trainer_logs.json"
    log.parent.mkdir()
    log.write_text('{"global_step": 1, "epoch": 0, "train/loss": 1.0}\n')
    r = glmx(
        "logs",
        "plot",
        str(log),
        "-o",
        str(tmp_path / "x.png"),
        env={"PYTHONPATH": str(tmp_path / "site")},
    )
    assert r.returncode == 2, r.stderr
    assert "pip install 'glmx[plot]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_tensorboard_runs_from_this_environment(tmp_path):
    run = tmp_path / "tensorboard"
    run.mkdir()
    (run / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    r = glmx("tb", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == [sys.executable, "-m", "tensorboard.main"]


def test_native_core_loads_before_torch_is_imported():
    code = (
        "import sys, glmx; assert 'torch' not in sys.modules; "
        "from glmx import _glmx; assert 'torch' in sys.modules; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_entry_point_errors_are_one_line_unless_full_error_is_set(tmp_path):
    r = _train("experiment=does_not_exist", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "does_not_exist" in r.stderr and "HYDRA_FULL_ERROR=1" in r.stderr
    for var in ("HYDRA_FULL_ERROR", "GLMX_FULL_ERROR"):
        full = subprocess.run(
            [sys.executable, "-m", "glmx.train", "experiment=does_not_exist"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, var: "1"},
            timeout=120,
        )
        assert full.returncode != 0 and "Traceback" in full.stderr, var
