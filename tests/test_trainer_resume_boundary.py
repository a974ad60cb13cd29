"""Exact resume from checkpoints taken where a validation or an epoch end is still to come.

`ModelCheckpoint(every_n_train_steps=...)` saves in `on_train_batch_end`, before the
validation due at that batch and, at an epoch's last batch, before the epoch end. The
uninterrupted run then validates (drawing from the global RNG: every DataLoader iterator
takes a base seed from it), steps epoch schedulers and shuffles the next epoch. A resumed run
must do the same, or its later losses differ (seen as a platform kill -9 test whose resumed
curve split from the reference at the first step after an epoch boundary).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx

ROWS, BATCH, EPOCHS = 256, 32, 4  # 8 batches per epoch


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

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class Record(glmx.Callback):
    """Every training loss and learning rate by step, and every validation loss by step."""

    def __init__(self) -> None:
        self.train: dict[int, tuple[float, float]] = {}
        self.val: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.train[trainer.global_step] = (float(outputs.detach()), lr)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val[trainer.global_step] = float(trainer.callback_metrics["val/loss"])


def _loaders() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(2 * ROWS, 8, generator=g), torch.randn(2 * ROWS, 1, generator=g)
    # no generator of its own: the shuffle draws from the global RNG, the common case
    train = DataLoader(TensorDataset(x[:ROWS], y[:ROWS]), batch_size=BATCH, shuffle=True)
    return train, DataLoader(TensorDataset(x[ROWS:], y[ROWS:]), batch_size=BATCH)


SCHEDULES = {
    "epoch_end": {"check_val_every_n_epoch": 1},
    "every_6_across_epochs": {"val_check_interval": 6, "check_val_every_n_epoch": None},
}


def _fit(run_dir, schedule: str, ckpt_path=None) -> Record:
    record = Record()
    trainer = glmx.Trainer(
        max_epochs=EPOCHS,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_job_control=False,
        callbacks=[
            record,
            glmx.ModelCheckpoint(dirpath=run_dir, every_n_train_steps=4, save_top_k=-1),
        ],
        **SCHEDULES[schedule],
    )
    torch.manual_seed(12345)
    trainer.fit(Net(), *_loaders(), ckpt_path=ckpt_path)
    return record


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    out = {}
    for schedule in SCHEDULES:
        run_dir = tmp_path_factory.mktemp(schedule)
        out[schedule] = (run_dir, _fit(run_dir, schedule))
    return out


# 8 and 16: the last batch of epochs 0 and 1 (validation and epoch end pending); 12: a
# validation due mid-epoch with check_val_every_n_epoch=None; 20: nothing pending
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("step", [8, 12, 16, 20])
def test_resume_runs_what_was_pending(references, tmp_path, schedule, step) -> None:
    run_dir, expected = references[schedule]
    ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
    resumed = _fit(tmp_path, schedule, ckpt_path=ckpt)
    assert resumed.train == {s: v for s, v in expected.train.items() if s > step}
    # the validation due at the checkpoint's own step runs in the resumed run
    assert resumed.val == {s: v for s, v in expected.val.items() if s >= step}
    assert resumed.val  # each schedule validates after every checkpoint tested here
