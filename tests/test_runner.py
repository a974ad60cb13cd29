"""The runner behind `python -m glmx.train`: --cfg, --info, run dirs, multirun layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glmx.hydra import runner

TREE = Path(__file__).parent / "fixtures" / "hydra" / "features"


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "-cp",
        str(TREE),
        "-cn",
        "config",
        f"hydra.run.dir={tmp_path}/run",
        f"hydra.sweep.dir={tmp_path}/sweep",
        *extra,
    ]


def test_cfg_job_prints_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.run(lambda c: 1 / 0, _args(tmp_path, "--cfg", "job", "lr=0.25")) is None
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["lr"] == 0.25 and out["db"]["driver"] == "mysql" and "hydra" not in out
    assert not (tmp_path / "run").exists()


def test_info_shows_searchpath_and_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.run(lambda c: None, _args(tmp_path, "--info"))
    out = capsys.readouterr().out
    assert "provider=main" in out and "db/mysql" in out and "server.db" in out


def test_run_writes_hydra_dir(tmp_path: Path) -> None:
    seen = {}
    result = runner.run(
        lambda cfg: seen.setdefault("cfg", cfg) and 7, _args(tmp_path, "db=postgres")
    )
    assert result == 7
    cfg = seen["cfg"]
    assert cfg.db.driver == "postgres" and cfg["db"]["engine"]["speed"] == 10
    meta = tmp_path / "run" / ".hydra"
    written = yaml.safe_load((meta / "overrides.yaml").read_text())
    assert written[-1] == "db=postgres"
    assert not any(o.startswith("hydra") for o in written), "hydra.* overrides are Hydra's own"
    assert yaml.safe_load((meta / "config.yaml").read_text())["db"]["driver"] == "postgres"
    hydra_cfg = yaml.safe_load((meta / "hydra.yaml").read_text())["hydra"]
    assert hydra_cfg["runtime"]["output_dir"] == str(tmp_path / "run")


def test_multirun_layout(tmp_path: Path) -> None:
    out = runner.run(
        lambda cfg: (cfg.lr, cfg.db.driver), _args(tmp_path, "-m", "lr=1,2", "db=glob(*)")
    )
    assert out == [(1, "mysql"), (1, "postgres"), (2, "mysql"), (2, "postgres")]
    sweep = tmp_path / "sweep"
    assert (sweep / "multirun.yaml").is_file()
    assert yaml.safe_load((sweep / "3" / ".hydra" / "overrides.yaml").read_text())[-2:] == [
        "lr=2",
        "db=postgres",
    ]


def test_sweep_without_multirun_is_an_error(tmp_path: Path) -> None:
    import glmx

    with pytest.raises(glmx.OverrideError, match="--multirun"):
        runner.run(lambda c: None, _args(tmp_path, "lr=1,2"))


def test_cfg_job_in_a_fresh_process_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom glmx.hydra import runner\n"
        f"runner.run(lambda c: None, {_args(tmp_path, '--cfg', 'job')!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "driver: mysql" in proc.stdout


def test_job_chdir_true_runs_inside_the_output_dir(tmp_path: Path) -> None:
    here = os.getcwd()
    seen = runner.run(lambda cfg: os.getcwd(), _args(tmp_path, "hydra.job.chdir=true"))
    assert seen == str(tmp_path / "run") and os.getcwd() == here
    assert runner.run(lambda cfg: os.getcwd(), _args(tmp_path)) == here


def test_strings_that_read_as_floats_or_bools_stay_quoted(tmp_path: Path, capsys) -> None:
    """`--cfg job` and .hydra/config.yaml read back as the same config (Hydra quotes these)."""
    tree = tmp_path / "conf"
    tree.mkdir()
    (tree / "train.yaml").write_text("s: '1e-3'\nb: 'y'\nl: [a, '1e5']\nf: 1e-3\n")
    args = ["-cp", str(tree), "-cn", "train", f"hydra.run.dir={tmp_path}/run"]
    runner.run(lambda cfg: None, [*args, "--cfg", "job"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"s": "1e-3", "b": "y", "l": ["a", "1e5"], "f": 0.001}
    runner.run(lambda cfg: None, args)
    written = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "s: '1e-3'" in written and "b: 'y'" in written


def test_mode_multirun_in_the_config_sweeps_without_dash_m(tmp_path: Path) -> None:
    """`hydra: {mode: MULTIRUN}` (as hparams_search configs write it): `x=1,2` sweeps, as in
    Hydra, instead of being refused as ambiguous."""
    tree = tmp_path / "conf"
    tree.mkdir()
    (tree / "train.yaml").write_text("x: 0\nhydra:\n  mode: MULTIRUN\n")
    args = ["-cp", str(tree), "-cn", "train", f"hydra.sweep.dir={tmp_path}/sweep", "x=1,2"]
    assert runner.run(lambda cfg: cfg.x, args) == [1, 2]
    assert (tmp_path / "sweep" / "multirun.yaml").is_file()
