"""Hydra and template parity gaps (issue #20): interpolated defaults, `_group_` headers,
Python-style line statements, `python -m glmx.eval` errors. Hydra cases compare with
hydra-core 1.3 on the same tree."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import glmx as _glmx  # the real CLI in a subprocess

import glmx
from glmx import _logging

hydra = pytest.importorskip("hydra", reason="hydra-core (the anchor) is in the dev extras")


def _hydra_compose(conf: Path, overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf), version_base=None):
        return OmegaConf.to_container(compose("config", overrides))


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("overrides", [[], ["db=postgres"], ["db=postgres", "model=b"]])
def test_interpolated_defaults_match_hydra(tmp_path: Path, overrides: list[str]) -> None:
    conf = _write(
        tmp_path,
        {
            "config.yaml": "defaults:\n  - pair: ${db}_${model}\n  - db: mysql\n"
            "  - model: a\n  - _self_\nx: 1\n",
            "db/mysql.yaml": "driver: mysql\n",
            "db/postgres.yaml": "driver: pg\n",
            "model/a.yaml": "m: a\n",
            "model/b.yaml": "m: b\n",
            "pair/mysql_a.yaml": "p: mysql_a\n",
            "pair/postgres_a.yaml": "p: postgres_a\n",
            "pair/postgres_b.yaml": "p: postgres_b\n",
        },
    )
    ours = glmx.compose("config", overrides, str(conf))
    assert ours == _hydra_compose(conf, overrides)
    assert ours["pair"]["p"] == "_".join(
        [
            "postgres" if "db=postgres" in overrides else "mysql",
            "b" if "model=b" in overrides else "a",
        ]
    )


def test_interpolated_default_unknown_key_names_the_choices(tmp_path: Path) -> None:
    conf = _write(
        tmp_path,
        {
            "config.yaml": "defaults:\n  - db: ${db_choice}\n  - _self_\ndb_choice: mysql\n",
            "db/mysql.yaml": "driver: mysql\n",
        },
    )
    with pytest.raises(glmx.ConfigError, match=r"resolving interpolation '\$\{db_choice\}'"):
        glmx.compose("config", [], str(conf))
    with pytest.raises(Exception, match="db_choice"):
        _hydra_compose(conf, [])  # Hydra refuses it too: only group choices are known


def test_group_header_is_a_literal_key_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _write(
        tmp_path,
        {
            "config.yaml": "defaults:\n  - db: mysql\n  - _self_\nx: 1\n",
            "db/mysql.yaml": "# @package _group_\ndriver: mysql\n",
        },
    )
    with caplog.at_level(logging.WARNING, logger="glmx"):
        ours = glmx.compose("config", [], str(conf))
        _logging.flush()
    assert ours == _hydra_compose(conf, []) == {"_group_": {"driver": "mysql"}, "x": 1}
    assert any("_group_" in r.getMessage() and "obsolete" in r.getMessage() for r in caplog.records)


def test_line_statements_accept_a_trailing_colon(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "configs/x.yaml": "-- set use_list = true\n-- if use_list:\nitems:\n"
            "-- for i in range(3):\n  - {{ i }}\n-- endfor\n-- else:\nitems: []\n-- endif\n",
        },
    )
    out = subprocess.run(
        [sys.executable, "-m", "glmx.cli", "-p", str(tmp_path), "-t", "x.yaml", "pp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "items:\n  - 0\n  - 1\n  - 2\n"


@pytest.mark.parametrize("full", [None, "HYDRA_FULL_ERROR", "GLMX_FULL_ERROR"])
def test_eval_errors_are_one_line(tmp_path: Path, full: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_FULL_ERROR")}
    if full:
        env[full] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "glmx.eval", "ckpt_path=/nonexistent/ckpt", "logger=csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if full:
        assert out.returncode == 1 and "Traceback (most recent call last)" in out.stderr
    else:
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr
        assert "glmx.eval: error: CheckpointError: ckpt_path '/nonexistent/ckpt'" in out.stderr
        assert "HYDRA_FULL_ERROR=1" in out.stderr


# --- commands and options of the template CLI --------------------------------------------------


def _ok(*args: str, cwd: Path, env: dict | None = None) -> str:
    r = _glmx(*args, cwd=cwd, env=env)
    assert r.returncode == 0, f"glmx {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_workspace_search_path_copy_config_templates_md_and_environment(tmp_path: Path) -> None:
    extra = _write(tmp_path / "extra", {"shared.yaml": "shared: {{ n | default(1) }}\n"})
    _ok("ws", "create", "ws", "--search-path", str(extra), cwd=tmp_path)
    ws = tmp_path / "ws"
    _ok("project", "create", "p", "--copy-config", str(extra / "shared.yaml"), cwd=ws)
    proj = ws / "p"
    assert (proj / "configs" / "shared.yaml").read_text() == (extra / "shared.yaml").read_text()
    assert _ok("pp", cwd=proj) == "shared: 1\n"  # the copied config is the default
    md = _ok("templates", "--format", "md", cwd=proj)
    assert md.startswith("| template | file | shadowed |\n|---|---|---|\n")
    assert f"| `shared.yaml` | `{extra / 'shared.yaml'}` |" in md  # from --search-path
    assert "| `configs/shared.yaml` |" in md
    assert _ok("tlist", "--format", "md", cwd=proj) == md
    bad = _glmx("ws", "create", "ws2", "--search-path", str(tmp_path / "nope"), cwd=tmp_path)
    assert bad.returncode == 2 and "--search-path" in bad.stderr and "Traceback" not in bad.stderr

    from glmx.project import Project

    env = Project(None, proj).environment
    assert str(extra) in env.search_path
    assert {"shared.yaml", "configs/shared.yaml", "configs/tiny_cpu.yaml"} <= set(
        env.list_templates()
    )
    assert env.render("shared.yaml", n=3) == "shared: 3\n"
    assert "main" in env.load("configs/tiny_cpu.yaml").targets
    with pytest.raises(glmx.GlmxError, match="'nope.yaml' not found"):
        env.get_source("nope.yaml")


def test_pp_from_a_hydra_project_root_composes(tmp_path: Path) -> None:
    _ok("project", "create", "hp", "--hydra", cwd=tmp_path)
    out = _ok("-t", "train.yaml", "pp", "trainer.max_steps=7", cwd=tmp_path / "hp")
    assert "defaults:" not in out  # composed, not the raw file
    assert "max_steps: 7" in out and "_target_: glmx.trainer.Trainer" in out


def _log(run: Path) -> Path:
    run.mkdir(parents=True)
    recs = [{"timestamp": 1.0 + s, "global_step": s, "train/loss": 3.0 / s} for s in range(1, 9)]
    (run / "trainer_logs.json").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run


def test_logs_summary_output_and_plot_open(tmp_path: Path) -> None:
    run = _log(tmp_path / "run")
    out = _ok("logs", "summary", str(run), "--format", "md", "-o", "s.md", cwd=tmp_path)
    assert out.strip() == "wrote s.md"
    text = (tmp_path / "s.md").read_text()
    assert text.startswith("### run\n") and "| best train/loss | 0.375 at step 8 |" in text
    # the opener is a command the test controls: it records the file it was asked to open
    marker = tmp_path / "opened.txt"
    opener = f"{sys.executable} -c \"import sys; open({str(marker)!r}, 'w').write(sys.argv[1])\""
    out = _ok(
        "logs", "plot", str(run), "-o", "p.png", "-e", cwd=tmp_path, env={"GLMX_OPENER": opener}
    )
    assert "opened" in out
    for _ in range(100):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.1)
    assert marker.read_text() == "p.png" and (tmp_path / "p.png").stat().st_size > 0
    bad = _glmx(
        "logs", "plot", str(run), "-o", "q.png", "-e", cwd=tmp_path, env={"GLMX_OPENER": "no-such"}
    )
    assert bad.returncode == 2 and "'no-such' not found" in bad.stderr
