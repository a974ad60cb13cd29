"""Lightning's run semantics through the real entry points (`python -m glmx.train` and
`glmx train` in a template project), run as a user's shell would: short runs, a monitored
metric that is missing, fast_dev_run, max_steps for every shipped experiment, repeated and
resumed runs, and what the experiment registry records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import glmx, ok

from glmx.tracking import RunRecord

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))
# the experiments that run on 2 CPU cores with data shipped in packages (others need a GPU
# cluster and downloaded data; they are composed, not run)
RUNNABLE = ["gpn_tiny_cpu", "tiny_cpu"]


def train(tmp: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m glmx.train`` from the repository's configs into ``tmp/run``."""
    return subprocess.run(
        [sys.executable, "-m", "glmx.train", f"hydra.run.dir={tmp / 'run'}", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GLMX_CONTROL_DIR": str(tmp / "ctl")},
        timeout=timeout,
    )


def _steps(run: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("checkpoint-*"))


@pytest.mark.slow
def test_short_gpn_run_warns_and_saves_last(tmp_path: Path) -> None:
    r = train(tmp_path, "experiment=gpn_tiny_cpu", "trainer.max_steps=20", "test=false")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "ModelCheckpoint(monitor='val/loss'): no value yet" in out
    run = tmp_path / "run"
    assert _steps(run) == [20]
    assert (run / "checkpoints" / "latest").read_text().strip().endswith("checkpoint-20")
    rec = RunRecord(run).summary()
    assert rec["status"] == "done" and rec["exit_code"] == 0 and rec["seed"] == 42


def test_monitored_key_missing_after_validation_is_a_clear_error(tmp_path: Path) -> None:
    r = train(
        tmp_path, "experiment=tiny_cpu", "callbacks.model_checkpoint.monitor=val/nope", "test=false"
    )
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr  # one line, as for the glmx CLI
    assert "ModelCheckpoint monitors 'val/nope', which was not logged" in r.stderr
    assert "val/loss" in r.stderr.split("which was not logged")[1].splitlines()[0]
    rec = RunRecord(tmp_path / "run").summary()
    assert rec["status"] == "failed" and rec["exit_code"] == 2
    assert "val/nope" in rec["error"] and "\n" not in rec["error"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_max_steps_overrides_compose_for_every_experiment(experiment: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "glmx.train", f"experiment={experiment}", "trainer.max_steps=7"]
        + ["--cfg", "job", "--resolve"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "max_steps: 7" in out.stdout
    fdr = subprocess.run(
        [sys.executable, "-m", "glmx.train", f"experiment={experiment}", "debug=fdr"]
        + ["--cfg", "job", "--resolve"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert fdr.returncode == 0, fdr.stderr
    assert "fast_dev_run: true" in fdr.stdout and "accelerator: cpu" in fdr.stdout


def test_tiny_cpu_max_steps_then_resume(tmp_path: Path) -> None:
    r = train(tmp_path, "experiment=tiny_cpu", "trainer.max_steps=5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _steps(tmp_path / "run")[-1] == 5
    r = train(tmp_path, "experiment=tiny_cpu", "trainer.max_steps=12", "ckpt_path=last")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout + r.stderr
    assert _steps(tmp_path / "run")[-1] == 12


@pytest.mark.parametrize("experiment", RUNNABLE)
def test_fast_dev_run_with_shipped_experiments(tmp_path: Path, experiment: str) -> None:
    r = train(tmp_path, f"experiment={experiment}", "debug=fdr")
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    assert not (run / "checkpoints").exists()  # fast_dev_run saves nothing
    assert not (run / "trainer_logs.json").exists()  # and logs nothing


@pytest.mark.slow
def test_template_project_runs_never_overwrite_each_other(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    ok("project", "create", str(root))
    small = ["max_steps=6", "hidden_size=16", "seq_len=64", "batch_size=4"]
    ok("-p", str(root), "train", *small)
    ok("-p", str(root), "train", *small)
    runs = sorted((root / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("tiny_cpu-") for r in runs)
    for run in runs:
        assert (run / "config.yaml").is_file() and "max_steps: 6" in (
            run / "config.yaml"
        ).read_text()
        assert (run / "trainer_logs.json").is_file()
        assert _steps(run) == [6]  # saves every 100 steps, but a run always keeps its end
    ok("-p", str(root), "train", "--resume", "max_steps=9", *small[1:])
    assert sorted((root / "runs").iterdir()) == runs
    assert _steps(runs[-1])[-1] == 9
    summary = ok("-p", str(root), "logs", "summary", "--format", "json")
    assert str(runs[-1]) in summary and str(runs[0]) not in summary
    r = glmx("-p", str(tmp_path / "proj"), "train", "-t", "tiny_cpu.yaml", "--resume", "nope=1")
    assert r.returncode != 0


def test_project_call_runs_the_training_entry_point(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    ok("project", "create", str(root))
    code = (
        "from glmx import Project\n"
        f"t = Project('tiny_cpu.yaml', project_dir={str(root)!r}, max_steps=4, hidden_size=16,"
        f" seq_len=64, batch_size=4, output_dir={str(tmp_path / 'out')!r})()\n"
        "print('step', t.global_step)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "step 4" in r.stdout
    assert _steps(tmp_path / "out") == [4]


def test_sweep_jobs_record_their_final_state(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "glmx.train", "-m", "experiment=tiny_cpu", "test=false"]
        + ["trainer.max_steps=2,3", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GLMX_CONTROL_DIR": str(tmp_path / "ctl")},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for job, steps in (("0", 2), ("1", 3)):
        rec = RunRecord(tmp_path / "sweep" / job).summary()
        assert (rec["status"], rec["exit_code"], rec["seed"]) == ("done", 0, 12345)
        assert rec["last_step"] == steps
