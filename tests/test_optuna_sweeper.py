"""The Optuna sweeper (`hydra/sweeper: optuna`): search space, trials, best result, real runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna.distributions as d
import pytest
import yaml

from glmx.errors import ConfigError
from glmx.hydra import optuna_sweeper, runner

REPO = Path(__file__).resolve().parent.parent


def _tree(tmp_path: Path, sweeper: str) -> Path:
    """A small primary config whose hparams_search option selects the optuna sweeper."""
    root = tmp_path / "conf"
    (root / "hparams_search").mkdir(parents=True)
    (root / "config.yaml").write_text(
        textwrap.dedent(
            """\
            defaults:
              - _self_
              - hparams_search: null
            x: 0.0
            y: 0
            kind: a
            fixed: 1
            """
        )
    )
    (root / "hparams_search" / "quad.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna\n"
        + textwrap.dedent(sweeper)
    )
    return root


def _run(tmp_path: Path, task, *extra: str):
    return runner.run(
        task,
        [
            "-cp",
            str(tmp_path / "conf"),
            "-cn",
            "config",
            f"hydra.sweep.dir={tmp_path}/sweep",
            "hparams_search=quad",
            *extra,
        ],
    )


SWEEP = """\
hydra:
  mode: MULTIRUN
  sweeper:
    direction: minimize
    n_trials: 12
    n_jobs: 3
    study_name: quad
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: 7
      n_startup_trials: 4
    params:
      x: interval(-2.0, 2.0)
      y: range(-3, 3)
      kind: choice(a, b)
"""


def test_distributions_follow_hydra_syntax() -> None:
    assert optuna_sweeper.distribution("k", "interval(0.1, 1)") == d.FloatDistribution(0.1, 1.0)
    assert optuna_sweeper.distribution("k", "tag(log, interval(1e-4, 1e-1))") == (
        d.FloatDistribution(1e-4, 0.1, log=True)
    )
    assert optuna_sweeper.distribution("k", "range(1, 9, 2)") == d.IntDistribution(1, 9, step=2)
    assert optuna_sweeper.distribution("k", "range(0, 1, 0.25)") == (
        d.FloatDistribution(0.0, 1.0, step=0.25)
    )
    assert optuna_sweeper.distribution("k", "choice(16, 32, 'x,y')") == (
        d.CategoricalDistribution([16, 32, "x,y"])
    )
    assert optuna_sweeper.distribution("k", "a,b,c") == d.CategoricalDistribution(["a", "b", "c"])
    assert optuna_sweeper.distribution("k", "0.5") is None
    with pytest.raises(ConfigError, match="'k'.*glob"):
        optuna_sweeper.distribution("k", "glob(*)")
    with pytest.raises(ConfigError, match="'k'.*needs numbers"):
        optuna_sweeper.distribution("k", "interval(a, 1)")


def test_study_runs_trials_and_reports_best(tmp_path: Path) -> None:
    _tree(tmp_path, SWEEP)
    seen: list[dict] = []

    def task(cfg):
        seen.append(dict(cfg))
        penalty = 0.0 if cfg.kind == "b" else 1.0
        return (cfg.x - 1.0) ** 2 + (cfg.y - 2) ** 2 + penalty

    # no -m: hydra.mode MULTIRUN in the hparams_search config makes it a sweep, as in Hydra
    results = _run(tmp_path, task, "fixed=5")
    assert len(results) == 12 == len(seen)
    assert all(c["fixed"] == 5 and -3 <= c["y"] <= 3 and -2 <= c["x"] <= 2 for c in seen)
    assert {c["kind"] for c in seen} == {"a", "b"}
    out = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert out["name"] == "optuna" and out["best_value"] == min(results)
    assert set(out["best_params"]) == {"x", "y", "kind"}
    # one directory per trial, each with the overrides Optuna chose
    for n in range(12):
        ov = yaml.safe_load((tmp_path / "sweep" / str(n) / ".hydra" / "overrides.yaml").read_text())
        assert "fixed=5" in ov and any(o.startswith("x=") for o in ov)


def test_command_line_sweep_wins_and_storage_resumes(tmp_path: Path) -> None:
    _tree(tmp_path, SWEEP.replace("n_trials: 12", "n_trials: 3"))
    db = tmp_path / "study.db"
    args = ("-m", "kind=b", "y=choice(0,1)", f"hydra.sweeper.storage=sqlite:///{db}")
    seen: list = []
    _run(tmp_path, lambda c: seen.append((c.kind, c.y)) or float(c.y), *args)
    assert {k for k, _ in seen} == {"b"} and {y for _, y in seen} <= {0, 1}
    _run(tmp_path, lambda c: float(c.y), *args)  # the same study, 3 more trials
    import optuna

    study = optuna.load_study(study_name="quad", storage=f"sqlite:///{db}")
    assert len(study.trials) == 6


def test_maximize_random_sampler_and_bad_return(tmp_path: Path) -> None:
    body = SWEEP.replace("minimize", "maximize").replace("n_trials: 12", "n_trials: 4")
    cut = body.index("    sampler:")
    body = body[:cut] + body[body.index("    params:") :]
    _tree(tmp_path, body)
    seen: list = []
    # the sampler as a config group option, as in Hydra: hydra/sweeper/sampler=random
    results = _run(tmp_path, lambda c: seen.append(c) or c.x, "hydra/sweeper/sampler=random")
    sampler = yaml.safe_load((tmp_path / "sweep" / "multirun.yaml").read_text())
    assert sampler["hydra"]["sweeper"]["sampler"]["_target_"] == "optuna.samplers.RandomSampler"
    out = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert out["best_value"] == max(results)
    with pytest.raises(ConfigError, match="returned None.*optimized_metric"):
        _run(tmp_path, lambda c: None)


def test_train_hparams_search_tiny_training(tmp_path: Path) -> None:
    """`python -m glmx.train -m hparams_search=toy_optuna` on the shipped tree, 3 short trials."""
    env = dict(os.environ, GLMX_CONFIG_PATH="")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.train",
            "-m",
            "hparams_search=toy_optuna",
            "experiment=tiny_cpu",
            "hydra.sweeper.n_trials=3",
            "trainer.max_epochs=1",
            "logger=csv",
            "extras.print_config=false",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "Best parameters:" in log and "Best value:" in log
    out = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert set(out["best_params"]) == {"model.lr", "data.batch_size", "model.hidden"}
    assert isinstance(out["best_value"], float)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1", "2"]


def test_missing_optuna_names_the_extra(tmp_path: Path) -> None:
    _tree(tmp_path, SWEEP)
    code = (
        "import sys; sys.modules['optuna'] = None\n"
        "from glmx.hydra import runner\n"
        f"runner.run(lambda c: 0.0, ['-cp', {str(tmp_path / 'conf')!r}, '-cn', 'config',"
        f" 'hparams_search=quad', 'hydra.sweep.dir={tmp_path}/sweep'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "glmx[sweep]" in proc.stderr
