"""Validation scheduling and epoch-end hooks, glmx against Lightning, row by row.

Each row runs the same tiny model with the same Trainer arguments under glmx and under
Lightning (the `lightning` package of the bench extra) and compares when validation runs (the
global step, whether it is the sanity check, how many val batches), when ``on_train_epoch_end``
runs, and where the run ends (``global_step``, ``current_epoch``).
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import glmx

L = pytest.importorskip("lightning", reason="lightning (bench extra) is the reference")

N_TRAIN, N_VAL = 10, 6


class _Stream(IterableDataset):
    """Batches without a length (Lightning's `val_check_batch = inf` path)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(self.n):
            yield torch.randn(4, generator=g), torch.randn(1, generator=g)


def _loaders(sized: bool = True):
    g = torch.Generator().manual_seed(0)
    train = TensorDataset(
        torch.randn(N_TRAIN, 4, generator=g), torch.randn(N_TRAIN, 1, generator=g)
    )
    val = TensorDataset(torch.randn(N_VAL, 4, generator=g), torch.randn(N_VAL, 1, generator=g))
    train_loader = DataLoader(train if sized else _Stream(N_TRAIN), batch_size=1)
    return train_loader, DataLoader(val, batch_size=1)


def _record(base_module, base_callback):
    events: list[tuple] = []

    class Net(base_module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch, batch_idx):
            events.append(("val_batch",))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Rec(base_callback):
        def on_validation_start(self, trainer, pl_module):
            events.append(("val_start", trainer.global_step, bool(trainer.sanity_checking)))

        def on_train_epoch_end(self, trainer, pl_module):
            events.append(("epoch_end", trainer.global_step, trainer.current_epoch))

    return Net, Rec, events


def _summarise(events: list[tuple]) -> list[tuple]:
    """`val_batch` events folded into the count of the validation they belong to."""
    out: list[tuple] = []
    for ev in events:
        if ev[0] == "val_batch":
            kind, step, sanity, n = out[-1]
            out[-1] = (kind, step, sanity, n + 1)
        elif ev[0] == "val_start":
            out.append((*ev, 0))
        else:
            out.append(ev)
    return out


def run_glmx(kwargs: dict, sized: bool = True) -> tuple:
    Net, Rec, events = _record(glmx.Module, glmx.Callback)
    trainer = glmx.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_job_control=False,
        accelerator="cpu",
        callbacks=[Rec()],
        **kwargs,
    )
    train, val = _loaders(sized)
    trainer.fit(Net(), train, val)
    return _summarise(events), trainer.global_step, trainer.current_epoch


def run_lightning(kwargs: dict, sized: bool = True) -> tuple:
    Net, Rec, events = _record(L.LightningModule, L.Callback)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = L.Trainer(
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
            callbacks=[Rec()],
            **kwargs,
        )
        train, val = _loaders(sized)
        trainer.fit(Net(), train, val)
    return _summarise(events), trainer.global_step, trainer.current_epoch


TABLE = [
    dict(max_epochs=2),
    dict(max_epochs=2, val_check_interval=0.25),
    dict(max_epochs=2, val_check_interval=0.3),
    dict(max_epochs=2, val_check_interval=4),
    dict(max_epochs=3, val_check_interval=4, check_val_every_n_epoch=None),
    dict(max_steps=25, val_check_interval=10, check_val_every_n_epoch=None),
    dict(max_epochs=3, check_val_every_n_epoch=2),
    dict(max_epochs=2, limit_val_batches=0),
    dict(max_epochs=2, limit_val_batches=0.5),
    dict(max_epochs=2, limit_val_batches=3, num_sanity_val_steps=5),
    dict(max_epochs=1, num_sanity_val_steps=0),
    dict(max_epochs=1, num_sanity_val_steps=-1),
    dict(fast_dev_run=True),
    dict(fast_dev_run=3),
    dict(max_epochs=2, accumulate_grad_batches=3, val_check_interval=4),
    dict(max_steps=7),
    dict(max_steps=7, max_epochs=-1, val_check_interval=3, check_val_every_n_epoch=None),
    dict(max_epochs=2, limit_train_batches=5),
    dict(max_epochs=2, limit_train_batches=0.5, val_check_interval=0.5),
]


@pytest.mark.parametrize("kwargs", TABLE, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_same_schedule_as_lightning(kwargs: dict) -> None:
    assert run_glmx(kwargs) == run_lightning(kwargs)


@pytest.mark.parametrize("kwargs", [dict(max_epochs=2), dict(max_steps=13, max_epochs=-1)])
def test_unsized_loader_same_as_lightning(kwargs: dict) -> None:
    assert run_glmx(kwargs, sized=False) == run_lightning(kwargs, sized=False)


def test_mid_epoch_stop_runs_epoch_end_hooks() -> None:
    """max_steps in the middle of an epoch: on_train_epoch_end still runs, once (Lightning)."""
    events, step, epoch = run_glmx(dict(max_steps=7, num_sanity_val_steps=0))
    assert step == 7
    assert [e for e in events if e[0] == "epoch_end"] == [("epoch_end", 7, 0)]
    assert (events, step, epoch) == run_lightning(dict(max_steps=7, num_sanity_val_steps=0))
