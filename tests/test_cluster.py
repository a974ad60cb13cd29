"""Cluster helpers without a scheduler: gres parsing, script generation, caching, GPU warnings,
dry-run submissions and a customised manager."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from glmx.cluster import (
    ClusterError,
    ExperimentManager,
    SlurmSpec,
    gpu_type_warning,
    load_environment,
)
from glmx.cluster.env import parse_gres, parse_pending, parse_sinfo_nodes
from glmx.tracking import RunRecord

# Real `sinfo -h -N -O NodeList:200,Partition:200,Gres:500,GresUsed:500,StateCompact:50` lines.
SINFO = """\
localhost  debug*  gpu:a100:2  gpu:a100:1(IDX:0)  mix
gpu01      gpu     gpu:a100:4(S:0-1),gpu:v100:2  gpu:a100:2(IDX:0,2),gpu:v100:0(IDX:N/A)  mix
gpu02      gpu     gpu:h100:8  gpu:h100:0(IDX:N/A)  drain
cpu01      cpu     (null)  (null)  idle
"""


def test_parse_gres_handles_types_sockets_and_index_lists():
    assert parse_gres("gpu:a100:4(S:0-1),gpu:v100:2") == {"a100": 4, "v100": 2}
    assert parse_gres("gpu:a100:2(IDX:0,2),gpu:v100:0(IDX:N/A)") == {"a100": 2, "v100": 0}
    assert parse_gres("gpu:3") == {"gpu": 3} and parse_gres("(null)") == {}


def test_free_gpus_per_partition_exclude_used_and_drained():
    parts = {p.name: p for p in parse_sinfo_nodes(SINFO)}
    assert parts["debug"].default and parts["debug"].free_gpus == {"a100": 1}
    assert parts["gpu"].gpus == {"a100": 4, "v100": 2, "h100": 8}
    assert parts["gpu"].free_gpus == {"a100": 2, "v100": 2, "h100": 0}
    parse_pending("gpu|gres/gpu:a100:2|2\ndebug|N/A|1\n", list(parts.values()))
    assert parts["gpu"].pending_gpus == 4 and parts["debug"].pending_gpus == 0


def test_environment_cache_is_per_project_and_refreshable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no SLURM client: detection still works
    monkeypatch.setenv("GLMX_SCRATCH", str(tmp_path / "scratch"))
    env = load_environment(tmp_path)
    assert not env.slurm and env.scratch == str(tmp_path / "scratch") and env.notes
    cache = tmp_path / ".glmx" / "env.json"
    data = json.loads(cache.read_text())
    data["user"] = "cached-user"
    cache.write_text(json.dumps(data))
    assert load_environment(tmp_path).user == "cached-user"
    assert load_environment(tmp_path, refresh=True).user != "cached-user"
    data["detected_at"] = time.time() - 10_000
    cache.write_text(json.dumps(data))
    assert load_environment(tmp_path, max_age=600).user != "cached-user", (
        "a stale cache is re-detected"
    )


def test_gpu_type_warning():
    assert gpu_type_warning("NVIDIA A100-SXM4-80GB", ["a100"]) is None
    assert "H100" in gpu_type_warning("NVIDIA H100 80GB HBM3", ["a100"])
    assert gpu_type_warning(None, ["a100"]) is None


def test_script_one_task_per_gpu_and_torchrun(tmp_path):
    spec = SlurmSpec(
        partition="gpu",
        gpus=4,
        gpu_type="a100",
        nodes=2,
        time="1:00:00",
        signal="USR1@90",
        account="lab",
    )
    sub = ExperimentManager(tmp_path, command=["python", "train.py"]).submit(
        ["a=1"], spec, dry_run=True
    )
    text = sub.script.read_text()
    for line in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gres=gpu:a100:4",
        "--signal=B:USR1@90",
        "--account=lab",
        "--partition=gpu",
        "--time=1:00:00",
        "--requeue",
    ):
        assert f"#SBATCH {line}" in text
    assert "RANK=$SLURM_PROCID" in text and "trap glmx_relay USR1" in text
    assert f"GLMX_RUN_DIR={sub.run_dirs[0]}" in text and "CMD=(python train.py a=1)" in text
    spec.launcher = "torchrun"
    text = (
        ExperimentManager(tmp_path, command=["python", "-m", "glmx.train"])
        .submit([], spec, dry_run=True)
        .script.read_text()
    )
    assert (
        "#SBATCH --ntasks-per-node=1" in text
        and "torch.distributed.run" in text
        and "--nproc-per-node=4" in text
    )
    assert "CMD+=(ckpt_path=last)" in text, "glmx.train resumes with ckpt_path=last"
    assert subprocess.run(["bash", "-n", str(sub.script)]).returncode == 0


def test_sweep_dry_run_makes_array_and_records(tmp_path):
    sub = ExperimentManager(tmp_path, command=["python", "t.py"]).submit(
        ["lr=1,2", "b=x"], multirun=True, dry_run=True
    )
    assert sub.array and [d.name for d in sub.run_dirs] == ["0", "1"]
    text = sub.script.read_text()
    assert "#SBATCH --array=0-1" in text and "%a/slurm-%A_%a.out" in text
    assert [RunRecord(d).summary()["overrides"] for d in sub.run_dirs] == [
        ["lr=1", "b=x"],
        ["lr=2", "b=x"],
    ]
    assert all(RunRecord(d).summary()["status"] == "created" for d in sub.run_dirs)


def test_bad_spec_and_resume_errors(tmp_path):
    with pytest.raises(ClusterError, match="launcher"):
        ExperimentManager(tmp_path).submit([], SlurmSpec(launcher="mpirun"), dry_run=True)
    with pytest.raises(ClusterError, match="signal"):
        SlurmSpec(signal="USR2@soon").validate()
    with pytest.raises(ClusterError, match="no glmx run record"):
        ExperimentManager(tmp_path).submit([], resume=tmp_path, dry_run=True)


class LabManager(ExperimentManager):
    def setup_lines(self, spec):
        return ["module load cuda/12.4"]

    def harvest(self, summary):
        return {"eval/auroc": 0.9}


def test_subclass_customises_script(tmp_path):
    sub = LabManager(tmp_path, command=["python", "t.py"]).submit([], dry_run=True)
    assert "module load cuda/12.4" in sub.script.read_text()


def test_cli_dry_run(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.cli",
            "slurm",
            "submit",
            "x=1",
            "--dry-run",
            "--gpus",
            "2",
            "--print",
            "--command",
            "python t.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "#SBATCH --gres=gpu:2" in out and "dry run: wrote" in out
