"""Trainer + checkpoint coordinator: exact resume of the loss trajectory on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx
from glmx.trainer import JsonLogger


class Net(glmx.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def data(shuffle: bool = False):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(-1)), batch_size=4, shuffle=shuffle)


def losses_of(run_dir):
    lines = (run_dir / "trainer_logs.json").read_text().splitlines()
    return {r["global_step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def net():
    glmx.seed_everything(0)
    return Net()


def trainer(run_dir, max_steps, **kw):
    return glmx.Trainer(
        max_steps=max_steps,
        default_root_dir=run_dir,
        log_every_n_steps=1,
        logger=[JsonLogger()],
        enable_progress_bar=False,
        callbacks=[glmx.ModelCheckpoint(every_n_train_steps=3, save_top_k=-1)],
        seed=0,
        **kw,
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_mid_epoch_matches_uninterrupted(tmp_path, shuffle):
    full = tmp_path / "full"
    trainer(full, 17).fit(net(), data(shuffle))
    expected = losses_of(full)
    assert len(expected) == 17

    cut = tmp_path / "cut"
    trainer(cut, 7).fit(net(), data(shuffle))  # saves at 3 and 6, and the final step 7
    ckpts = sorted(p.name for p in (cut / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-3", "checkpoint-6", "checkpoint-7"]
    t = trainer(cut, 17)
    t.fit(net(), data(shuffle), ckpt_path="last")
    got = losses_of(cut)
    assert sorted(got) == list(range(1, 18)), "records after the checkpoint step are replaced"
    for step in range(1, 18):
        assert got[step] == expected[step], f"step {step}: {got[step]} != {expected[step]}"


def test_checkpoint_files_are_not_pickles(tmp_path):
    trainer(tmp_path, 3).fit(net(), data())
    files = [p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    for p in files:
        head = p.read_bytes()[:2]
        assert head != b"\x80\x04" and head[:1] != b"\x80", f"{p} looks like a pickle"
    manifest = json.loads(
        next(p for p in files if p.name == "checkpoint_manifest.json").read_text()
    )
    assert {"optimizer", "scheduler", "trainer", "rng"} <= set(manifest["components"])


def test_save_last_keeps_the_final_step(tmp_path):
    t = glmx.Trainer(
        max_steps=7,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        callbacks=[glmx.ModelCheckpoint(every_n_train_steps=3, save_top_k=-1, save_last=True)],
    )
    t.fit(net(), data())
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert names == ["checkpoint-3", "checkpoint-6", "checkpoint-7"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "checkpoint-7"
