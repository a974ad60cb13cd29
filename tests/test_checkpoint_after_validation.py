"""Which steps become checkpoints, and which is best, when validation runs within an epoch:
the same as Lightning 2.6 for the same run (ModelCheckpoint saves after each validation unless
validation runs exactly once per epoch)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx

L = pytest.importorskip("lightning", reason="lightning is the anchor (test extra)")

STEPS = 50  # 20 batches per epoch; the last validations are not the best ones


def _data() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1280 + 256, 8, generator=g)
    y = (x.sum(dim=1, keepdim=True) > 0).float() + 0.3 * torch.randn(len(x), 1, generator=g)
    train = DataLoader(TensorDataset(x[:640], y[:640]), batch_size=32)
    return train, DataLoader(TensorDataset(x[1280:], y[1280:]), batch_size=64)


def _module(base: type):
    class Net(base):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            # a learning rate high enough that val/loss is not monotonic: the best step is not
            # simply the last one
            return torch.optim.SGD(self.parameters(), lr=0.4)

    return Net()


class ValSteps:
    def __init__(self) -> None:
        self.steps: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.steps.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))


SCHEDULES = {
    "within_epoch": {"val_check_interval": 7},
    "across_epochs": {"val_check_interval": 15, "check_val_every_n_epoch": None},
    "every_other_epoch": {"check_val_every_n_epoch": 2},
    "once_per_epoch": {},
}


def _best_lightning(tmp_path, schedule) -> tuple[int, list]:
    class Rec(ValSteps, L.Callback):
        pass

    rec = Rec()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/loss")
    trainer = L.Trainer(
        max_steps=STEPS,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        callbacks=[rec, ckpt],
        **SCHEDULES[schedule],
    )
    trainer.fit(_module(L.LightningModule), *_data())
    step = int(ckpt.best_model_path.rsplit("step=", 1)[1].split(".")[0])
    return step, rec.steps


def _best_glmx(tmp_path, schedule) -> tuple[int, list]:
    class Rec(ValSteps, glmx.Callback):
        pass

    rec = Rec()
    trainer = _glmx_trainer(tmp_path, rec, num_sanity_val_steps=0, **SCHEDULES[schedule])
    trainer.fit(_module(glmx.Module), *_data())
    return int(trainer.checkpoint_callback.best_model_path.rsplit("-", 1)[1]), rec.steps


def _glmx_trainer(tmp_path, *callbacks, **schedule) -> glmx.Trainer:
    return glmx.Trainer(
        max_steps=STEPS,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_job_control=False,
        callbacks=[*callbacks, glmx.ModelCheckpoint(dirpath=tmp_path, monitor="val/loss")],
        **schedule,
    )


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_best_checkpoint_step_matches_lightning(tmp_path, schedule):
    lit_best, lit_vals = _best_lightning(tmp_path / "lightning", schedule)
    best, vals = _best_glmx(tmp_path / "glmx", schedule)
    assert [s for s, _ in vals] == [s for s, _ in lit_vals]  # same validation schedule
    assert best == lit_best, (vals, lit_vals)
    # and it is the validated step with the lowest value
    assert best == min(vals, key=lambda sv: sv[1])[0]


def test_evaluation_names_the_checkpoint_it_loads(tmp_path, capsys):
    trainer = _glmx_trainer(tmp_path, val_check_interval=7)
    module = _module(glmx.Module)
    train, val = _data()
    trainer.fit(module, train, val)
    best = trainer.checkpoint_callback.best_model_path
    capsys.readouterr()
    trainer.validate(module, val, ckpt_path="best", verbose=False)
    assert f"Loaded model weights from the checkpoint at {best}" in capsys.readouterr().err
    trainer.fit(module, train, val, ckpt_path="last")
    assert "Restoring states from the checkpoint at " in capsys.readouterr().err
