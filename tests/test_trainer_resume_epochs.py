"""Exact mid-epoch resume for a shuffled torch DataLoader with its own generator, in every
epoch: resumed runs reproduce every later loss of the uninterrupted run bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx

ROWS, BATCH, MAX_STEPS = 512, 32, 70  # 16 batches per epoch: steps 0-70 span epochs 0-4


class Net(glmx.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Losses(glmx.Callback):
    def __init__(self) -> None:
        self.by_step: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.by_step[trainer.global_step] = float(outputs.detach())


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(7)
    data = TensorDataset(torch.randn(ROWS, 8, generator=g), torch.randn(ROWS, 1, generator=g))
    return DataLoader(
        data, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(1)
    )


def _fit(run_dir, ckpt_path=None) -> Losses:
    losses = Losses()
    trainer = glmx.Trainer(
        max_steps=MAX_STEPS,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_job_control=False,
        callbacks=[
            losses,
            glmx.ModelCheckpoint(
                dirpath=run_dir, every_n_train_steps=4, save_top_k=-1, save_last=True
            ),
        ],
    )
    torch.manual_seed(12345)  # a resumed process starts from another global RNG state
    trainer.fit(Net(), _loader(), ckpt_path=ckpt_path)
    return losses


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ref")
    return run_dir, _fit(run_dir).by_step


# 8: epoch 0; 20, 36, 56: mid-epoch in epochs 1, 2, 3; 48: the boundary of epochs 2 and 3
@pytest.mark.parametrize("step", [8, 20, 36, 48, 56])
def test_resume_reproduces_every_later_loss(reference, tmp_path, step) -> None:
    run_dir, expected = reference
    ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
    assert ckpt.is_dir()
    resumed = _fit(tmp_path, ckpt_path=ckpt).by_step
    later = {s: v for s, v in expected.items() if s > step}
    assert sorted(resumed) == sorted(later)
    assert resumed == later  # bit for bit
