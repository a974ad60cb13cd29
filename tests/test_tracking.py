"""Experiment registry: run records, status folding, heartbeat death, the SQLite index under
concurrent indexers, the ``glmx exp`` commands, and the tracker callback in a real fit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx
from glmx.tracking import ExperimentIndex, ExperimentTracker, RunRecord, read_metrics
from glmx.trainer import JsonLogger


def make_run(tmp_path, name, overrides, losses, config=None):
    run_dir = tmp_path / "outputs" / name
    run_dir.mkdir(parents=True)
    rec = RunRecord.create(
        run_dir, config=config or {"model": {"lr": 0.1}}, overrides=overrides, seed=1
    )
    with open(run_dir / "trainer_logs.json", "w") as f:
        for step, loss in enumerate(losses, 1):
            f.write(
                json.dumps({"timestamp": 0, "global_step": step, "epoch": 0, "train/loss": loss})
                + "\n"
            )
    return rec


def test_status_fold_through_preemption(tmp_path):
    rec = make_run(tmp_path, "a", ["lr=1"], [3.0, 1.0, 2.0])
    assert rec.summary()["status"] == "created"
    rec.append("submitted", job_id="7")
    assert rec.summary()["status"] == "queued"
    rec.append("started", slurm={"job_id": "7", "restart_count": 0}, gpu=None, hostname="h")
    rec.heartbeat()
    assert rec.summary()["status"] == "running"
    rec.append("preempted", step=2)
    rec.append("exit", rc=0)  # the batch script's exit record does not hide the preemption
    assert rec.summary()["status"] == "preempted"
    rec.append(
        "started", slurm={"job_id": "7", "restart_count": 1}, gpu="NVIDIA H100", hostname="h"
    )
    rec.append("ended", status="done", step=3)
    s = rec.summary()
    assert (s["status"], s["restarts"], s["preemptions"], s["job_id"]) == ("done", 1, 1, "7")
    assert s["final_metrics"]["train/loss"] == 2.0 and s["best_metrics"]["train/loss"] == {
        "value": 1.0,
        "step": 2,
    }


def test_dead_by_heartbeat_and_failed_exit(tmp_path):
    rec = make_run(tmp_path, "b", [], [1.0])
    rec.append("started", slurm={}, gpu=None, hostname="h")
    rec.heartbeat(now=time.time() - 3600)
    assert rec.summary()["status"] == "dead"
    other = make_run(tmp_path, "c", [], [1.0])
    other.append("started", slurm={}, gpu=None, hostname="h")
    other.append("exit", rc=1)
    assert other.summary()["status"] == "failed" and other.summary()["exit_code"] == 1


def test_cut_lines_are_tolerated(tmp_path):
    rec = make_run(tmp_path, "d", [], [2.0, 1.5])
    with open(rec.events_path, "a") as f:
        f.write('{"event": "started", "ti')  # a crash mid-write
    with open(rec.run_dir / "trainer_logs.json", "a") as f:
        f.write('{"global_step": 3, "train/lo')
    assert rec.summary()["status"] == "created"
    assert read_metrics(rec.run_dir)[0]["train/loss"] == 1.5


def test_index_concurrent_refreshes_stay_complete(tmp_path):
    for i in range(6):
        make_run(tmp_path, f"r{i}", [f"lr={i}"], [float(i)])
    index = ExperimentIndex([tmp_path / "outputs"], tmp_path / "idx.sqlite")
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: index.refresh(), range(8)))
    assert counts == [6] * 8 and len(index.runs()) == 6
    assert not list(tmp_path.glob("idx.sqlite.*.tmp")), "temporary index files are cleaned up"
    ids = [r["id"] for r in index.runs()]
    first = ids[0]
    # the shortest prefix of the first id that no other id shares resolves to it
    n = next(n for n in range(1, len(first) + 1) if sum(i.startswith(first[:n]) for i in ids) == 1)
    assert index.get(first[:n])["id"] == first
    if n > 1:  # a prefix shared with another run is ambiguous, and the error says so
        with pytest.raises(glmx.GlmxError, match="matches 2 runs|matches [3-6] runs"):
            index.get(first[: n - 1])
    with pytest.raises(glmx.GlmxError, match="no run matches"):
        index.get("nope")


def cli(*args, cwd):
    out = subprocess.run(
        [sys.executable, "-m", "glmx.cli", *args], cwd=cwd, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_exp_commands(tmp_path):
    a = make_run(tmp_path, "a", ["lr=0.1"], [2.0, 1.0], {"model": {"lr": 0.1, "dim": 8}})
    b = make_run(tmp_path, "b", ["lr=0.3"], [2.0, 0.5], {"model": {"lr": 0.3, "dim": 8}})
    ida, idb = a.summary()["id"], b.summary()["id"]
    table = cli("exp", "list", cwd=tmp_path)
    assert ida in table and idb in table and "train/loss" in table
    rows = json.loads(cli("exp", "list", "--format", "json", cwd=tmp_path))
    assert {r["final"] for r in rows} == {1.0, 0.5}
    csv_text = cli("exp", "list", "--format", "csv", cwd=tmp_path)
    assert csv_text.splitlines()[0].startswith("id,status")
    shown = json.loads(cli("exp", "show", ida, cwd=tmp_path))
    assert shown["config"]["model"]["lr"] == 0.1 and shown["events"][0]["event"] == "created"
    assert "packages" in shown and "torch" in shown["packages"]
    diff = cli("exp", "compare", ida, idb, cwd=tmp_path)
    assert (
        "model.lr: 0.1 | 0.3" in diff
        and "model.dim" not in diff
        and "train/loss: 1 / 1 | 0.5 / 0.5" in diff
    )
    cli("exp", "export", "-o", "runs.csv", cwd=tmp_path)
    header = (tmp_path / "runs.csv").read_text().splitlines()[0]
    assert "final/train/loss" in header and "best/train/loss" in header


class Net(glmx.Module):
    def __init__(self, fail_at=None):
        super().__init__()
        self.lin, self.fail_at = torch.nn.Linear(2, 1), fail_at

    def training_step(self, batch, batch_idx):
        if self.trainer.global_step == self.fail_at:
            raise RuntimeError("boom")
        loss = self.lin(batch[0]).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_tracker_records_a_real_fit(tmp_path):
    data = DataLoader(TensorDataset(torch.ones(8, 2)), batch_size=2)
    trainer = glmx.Trainer(
        max_steps=4,
        default_root_dir=tmp_path / "run",
        logger=[JsonLogger()],
        log_every_n_steps=1,
        enable_progress_bar=False,
        callbacks=[ExperimentTracker(config={"x": 1})],
        seed=3,
    )
    trainer.fit(Net(), data)
    s = RunRecord(tmp_path / "run").summary()
    assert (
        s["status"] == "done"
        and s["seed"] == 3
        and s["hostname"]
        and "train/loss" in s["final_metrics"]
    )
    assert RunRecord(tmp_path / "run").config() == {"x": 1}
    assert [e["event"] for e in RunRecord(tmp_path / "run").events()] == [
        "created",
        "started",
        "ended",
    ]


def test_tracker_records_failure_at_exit(tmp_path):
    code = (
        "import torch, glmx, sys; sys.path.insert(0, {!r}); from test_tracking import Net\n"
        "from torch.utils.data import DataLoader, TensorDataset\nfrom glmx.tracking import ExperimentTracker\n"
        "t = glmx.Trainer(max_steps=4, default_root_dir='run', logger=False, enable_progress_bar=False,"
        " callbacks=[ExperimentTracker()])\nt.fit(Net(fail_at=2), DataLoader(TensorDataset(torch.ones(8, 2)), batch_size=2))\n"
    ).format(str(__import__("pathlib").Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    s = RunRecord(tmp_path / "run").summary()
    assert s["status"] == "failed" and "boom" in s["error"]
