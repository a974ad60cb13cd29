"""The hand-written TensorBoard event files are read by TensorBoard itself."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx
from glmx.trainer import TensorBoardLogger

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard is a test dependency (pyproject [test]); install it to run this test",
)


class Tiny(glmx.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.lin(x).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_tensorboard_reads_scalars(tmp_path):
    data = DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=4)
    trainer = glmx.Trainer(
        max_steps=8,
        log_every_n_steps=2,
        default_root_dir=tmp_path,
        logger=[TensorBoardLogger()],
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(Tiny(), data)
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [1, 2, 4, 6, 8]
    assert all(e.value >= 0 for e in acc.Scalars("train/loss"))
