"""Against a real single-node SLURM (.ci/slurm-single-node.sh, started here if needed):
submit, complete and harvest; preempt with USR2, requeue, resume, identical losses; an array
sweep; environment detection from the real sinfo/squeue."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = Path(os.environ.get("SLURM_CI_DIR", "/tmp/glmx-slurm"))
CONF = SLURM_DIR / "slurm.conf"

TRAIN = """
import os, sys, time
import torch
from torch.utils.data import DataLoader, TensorDataset
import glmx
from glmx.cluster import SlurmRequeue, resume_ckpt_path
from glmx.tracking import ExperimentTracker
from glmx.trainer import JsonLogger

args = dict(a.split("=", 1) for a in sys.argv[1:])
lr, steps, pause = float(args.get("lr", "0.05")), int(args.get("steps", "30")), float(args.get("sleep", "0"))

class Net(glmx.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(8, 1))
    def training_step(self, batch, batch_idx):
        time.sleep(pause)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train/loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=lr)

x = torch.randn(48, 4, generator=torch.Generator().manual_seed(3))
data = DataLoader(TensorDataset(x, x.sum(-1)), batch_size=4)
run_dir = os.environ.get("GLMX_RUN_DIR", ".")
glmx.seed_everything(0)
trainer = glmx.Trainer(max_steps=steps, default_root_dir=run_dir, log_every_n_steps=1, logger=[JsonLogger()],
                       enable_progress_bar=False, seed=0, callbacks=[ExperimentTracker(), SlurmRequeue()])
trainer.fit(Net(), data, ckpt_path=resume_ckpt_path(run_dir))
print("FINAL", repr(trainer.callback_metrics_float("train/loss")), flush=True)
"""


def _up(env: dict[str, str]) -> bool:
    if shutil.which("scontrol") is None or not CONF.exists():
        return False
    out = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=20)
    return "UP" in out.stdout


@pytest.fixture(scope="session")
def slurm():
    """A running single-node SLURM; started with the project's CI script when it is not up."""
    env = {**os.environ, "SLURM_CONF": str(CONF)}
    if not _up(env):
        if os.geteuid() != 0:
            pytest.skip(
                "SLURM is not running and starting it (.ci/slurm-single-node.sh) needs root"
            )
        started = subprocess.run(
            [str(REPO / ".ci" / "slurm-single-node.sh"), "start"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if started.returncode != 0 or not _up(env):
            pytest.skip(f"slurmctld could not be installed/started: {started.stderr[-500:]}")
    os.environ["SLURM_CONF"] = str(CONF)
    return env


def glmx_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "glmx.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return out


def submit(tmp_path: Path, *overrides: str, multirun: bool = False) -> tuple[str, list[Path]]:
    (tmp_path / "train_tiny.py").write_text(TRAIN)
    args = [
        "slurm",
        "submit",
        *overrides,
        "--command",
        f"{sys.executable} train_tiny.py",
        "--partition",
        "debug",
    ]
    out = glmx_cli(*args, *(["-m"] if multirun else []), cwd=tmp_path).stdout
    job = out.split("job ")[1].split()[0].rstrip(";")
    dirs = [Path(line.split()[1]) for line in out.splitlines() if line.startswith("  ")]
    return job, dirs


def squeue_state(job: str) -> str:
    """The job's state, "" once SLURM no longer lists it. A busy controller can time out a
    query: that is retried, never read as "the job is gone"."""
    for _ in range(20):
        out = subprocess.run(
            ["squeue", "-h", "-r", "-j", job, "-o", "%T"], capture_output=True, text=True
        )
        if out.returncode == 0:
            return out.stdout.strip()
        if "Invalid job id" in out.stderr:
            return ""
        time.sleep(0.5)
    raise AssertionError(f"squeue kept failing for job {job}: {out.stderr.strip()}")


def wait_gone(job: str, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while squeue_state(job):
        assert time.time() < deadline, f"job {job} still {squeue_state(job)} after {timeout} s"
        time.sleep(0.5)


def losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "trainer_logs.json").read_text().splitlines()
    return {r["global_step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def job_story(run_dir: Path) -> str:
    """What the job's batch log and run events say: the message of a failed assertion."""
    parts = [f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(run_dir.glob("slurm-*.out"))]
    events = run_dir / "glmx-run" / "events.jsonl"
    if events.exists():
        parts.append(f"--- events.jsonl\n{events.read_text()[-3000:]}")
    return "\n".join(parts)


def test_detection_parses_real_sinfo(slurm, tmp_path):
    out = glmx_cli("env", "--refresh", "--json", cwd=tmp_path).stdout
    env = json.loads(out)
    assert env["slurm"] and env["slurm_version"].startswith("slurm")
    parts = {p["name"]: p for p in env["partitions"]}
    assert set(parts) >= {"debug", "gpu"} and parts["debug"]["default"]
    assert parts["gpu"]["gpus"] == {"a100": 2} and parts["gpu"]["free_gpus"]["a100"] <= 2
    assert (tmp_path / ".glmx" / "env.json").exists(), "detection is cached per project"
    table = glmx_cli("env", cwd=tmp_path).stdout
    assert "a100" in table and "cached" not in json.dumps(env)


def test_submit_completes_and_is_harvested(slurm, tmp_path):
    job, (run_dir,) = submit(tmp_path, "steps=12")
    script = (run_dir / "submit.sbatch").read_text()
    assert "#SBATCH --signal=B:USR2@120" in script and "scontrol show hostnames" in script
    wait_gone(job)
    assert "FINAL" in next(run_dir.glob("slurm-*.out")).read_text()
    rows = json.loads(glmx_cli("exp", "harvest", "--format", "json", cwd=tmp_path).stdout)
    (row,) = rows
    assert row["status"] == "done" and row["job"] == job and row["metric"] == "train/loss"
    assert row["final"] == losses(run_dir)[12]
    listed = glmx_cli("exp", "list", cwd=tmp_path).stdout
    assert row["id"] in listed and "done" in listed


def test_preempt_requeue_resume_matches_uninterrupted(slurm, tmp_path):
    steps = 60  # ~9 s of training: time for the signal to arrive on a slow machine
    job, (run_dir,) = submit(tmp_path, f"steps={steps}", "sleep=0.15")
    deadline = time.time() + 60
    while not (run_dir / "trainer_logs.json").exists() or len(losses(run_dir)) < 6:
        assert time.time() < deadline, "training did not start"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", "--batch", job], check=True)
    deadline = time.time() + 30
    while squeue_state(job) != "PENDING":
        assert time.time() < deadline, f"job not requeued: {squeue_state(job)}"
        time.sleep(0.3)
    events = [
        json.loads(line)
        for line in (run_dir / "glmx-run" / "events.jsonl").read_text().splitlines()
    ]
    preempted = [e for e in events if e["event"] == "preempted"]
    assert len(preempted) == 1 and 6 <= preempted[0]["step"] < steps
    # A requeued job waits for a begin time in the future. Starting it at once races slurmd:
    # a launch whose credential dates from the same second as the revocation of the old
    # instance's is refused ("Job credential revoked") and the job fails. So wait 2 s, then
    # ask (again while it stays pending). Done means: every step logged and the job gone.
    time.sleep(2)
    deadline = time.time() + 120
    while (state := squeue_state(job)) or len(losses(run_dir)) < steps:
        story = f"job {job} is {state or 'gone'!r}\n{job_story(run_dir)}"
        assert state and time.time() < deadline, story
        if state == "PENDING":
            subprocess.run(
                ["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True
            )
        time.sleep(1)

    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(
        [sys.executable, str(tmp_path / "train_tiny.py"), f"steps={steps}"],
        cwd=ref,
        check=True,
        env={**os.environ, "GLMX_RUN_DIR": str(ref)},
        capture_output=True,
        timeout=120,
    )
    got, expected = losses(run_dir), losses(ref)
    assert sorted(got) == list(range(1, steps + 1)), job_story(run_dir)
    assert got == expected, "the requeued run must reproduce the uninterrupted losses exactly"
    summary = json.loads(glmx_cli("exp", "show", str(run_dir), cwd=tmp_path).stdout)
    assert summary["status"] == "done" and summary["restarts"] == 1 and summary["preemptions"] == 1


def test_array_sweep_of_two_values(slurm, tmp_path):
    job, dirs = submit(tmp_path, "steps=8", "lr=0.01,0.1", multirun=True)
    assert [d.name for d in dirs] == ["0", "1"]
    wait_gone(job)
    for d in dirs:
        assert list(d.glob(f"slurm-{job}_*.out")), "one log per array task in its own folder"
    rows = json.loads(glmx_cli("exp", "harvest", "--format", "json", cwd=tmp_path).stdout)
    by_task = {r["job"]: r for r in rows}
    assert set(by_task) == {f"{job}_0", f"{job}_1"}
    assert {r["overrides"] for r in rows} == {"steps=8 lr=0.01", "steps=8 lr=0.1"}
    assert all(r["status"] == "done" for r in rows)
    assert by_task[f"{job}_0"]["final"] != by_task[f"{job}_1"]["final"]


def test_hydra_launcher_slurm_submits_the_runner(slurm, tmp_path):
    """`python -m glmx.train hydra/launcher=slurm ...` submits instead of training here; the
    job trains the tiny experiment with `python -m glmx.train` on the cluster."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.train",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=debug",
            "experiment=tiny_cpu",
            "trainer.max_epochs=1",
            "test=false",
            "extras.print_config=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("submitted job "))
    job, run_dir = line.split()[2].rstrip(":"), Path(line.split(": ", 1)[1])
    wait_gone(job, timeout=180)
    records = [json.loads(x) for x in (run_dir / "trainer_logs.json").read_text().splitlines()]
    assert any("val/loss" in r for r in records), "the job trained the experiment"
    cfg = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "experiment=tiny_cpu" in cfg and "hydra/launcher" not in cfg
