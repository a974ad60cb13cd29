"""Lightning semantics that are easy to get subtly wrong: hook order, resume at epoch ends,
callbacks from the module, stop decisions."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx


def data(n: int = 40, batch: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(-1)), batch_size=batch)


class Net(glmx.Module):
    def __init__(self, sched: str | None = None):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
        self.sched = sched
        self.events: list[str] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), y) * 100
        self.log("train/loss", loss)
        self.log("train/epoch_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.lin(x).squeeze(-1), y))

    def on_after_backward(self):
        self.events.append("after_backward")

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.01)
        if self.sched == "epoch":
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]
        return opt


def quiet(**kw):
    kw.setdefault("logger", False)
    kw.setdefault("enable_progress_bar", False)
    return glmx.Trainer(**kw)


def test_epoch_scheduler_state_resumes_exactly(tmp_path):
    glmx.seed_everything(0)
    full = quiet(max_epochs=2, default_root_dir=tmp_path / "a")
    full.fit(Net("epoch"), data())
    glmx.seed_everything(0)
    quiet(max_epochs=1, default_root_dir=tmp_path / "b").fit(Net("epoch"), data())
    resumed = quiet(max_epochs=2, default_root_dir=tmp_path / "b")
    resumed.fit(Net("epoch"), data(), ckpt_path="last")
    lr = [t.optimizers[0].param_groups[0]["lr"] for t in (full, resumed)]
    assert lr[0] == pytest.approx(0.0025) and lr[1] == pytest.approx(lr[0])


def test_epoch_metrics_are_ready_for_monitoring_callbacks(tmp_path):
    # epoch 0 already saves: the epoch mean exists before the monitoring callback runs
    ckpt = glmx.ModelCheckpoint(monitor="train/epoch_loss", save_top_k=-1)
    quiet(max_epochs=2, default_root_dir=tmp_path, callbacks=[ckpt]).fit(Net(), data())
    saved = ckpt.manager.list()
    assert [c.step for c in saved] == [10, 20]
    assert all("train/epoch_loss" in c.metrics for c in saved)


def test_module_callbacks_replace_the_trainers(tmp_path):
    class WithCallbacks(Net):
        def configure_callbacks(self):
            return [glmx.ModelCheckpoint(monitor="val/loss", save_top_k=2)]

    trainer = quiet(max_epochs=3, default_root_dir=tmp_path)
    trainer.fit(WithCallbacks(), data(), data(8))
    ckpts = [c for c in trainer.callbacks if isinstance(c, glmx.ModelCheckpoint)]
    assert len(ckpts) == 1 and ckpts[0].save_top_k == 2
    assert isinstance(trainer.callbacks[-1], glmx.ModelCheckpoint)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert len(kept) >= 2


def test_pre_step_hook_sees_unclipped_gradients_and_after_backward_runs():
    norms = []

    class Probe(glmx.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            norms.append(
                float(torch.cat([p.grad.flatten() for p in pl_module.parameters()]).norm())
            )

    model = Net()
    trainer = quiet(max_steps=3, gradient_clip_val=1e-3, callbacks=[Probe()])
    trainer.fit(model, data())
    assert len(norms) == 3 and all(n > 1e-3 for n in norms)
    assert model.events.count("after_backward") == 3


def test_stop_request_waits_for_min_epochs():
    class StopAtOnce(glmx.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            trainer.should_stop = True

    trainer = quiet(max_epochs=5, min_epochs=2, callbacks=[StopAtOnce()])
    trainer.fit(Net(), data())
    assert trainer.current_epoch == 2


def test_resume_mid_accumulation_keeps_the_saved_checkpoint(tmp_path):
    def run(steps, ckpt=None):
        glmx.seed_everything(0)
        t = quiet(
            max_steps=steps,
            accumulate_grad_batches=2,
            default_root_dir=tmp_path,
            callbacks=[glmx.ModelCheckpoint(every_n_train_steps=2, save_top_k=-1)],
        )
        t.fit(Net(), data(), ckpt_path=ckpt)
        return t

    run(2)
    saved = (tmp_path / "checkpoints" / "checkpoint-2" / "checkpoint_manifest.json").read_bytes()
    run(4, ckpt="last")
    again = (tmp_path / "checkpoints" / "checkpoint-2" / "checkpoint_manifest.json").read_bytes()
    assert again == saved, "checkpoint-2 was rewritten after resuming"
    assert (tmp_path / "checkpoints" / "checkpoint-4").exists()


def test_batches_keep_their_structure_when_moved_to_the_device():
    from collections import namedtuple

    Pair = namedtuple("Pair", ["x", "y"])
    trainer = glmx.Trainer(logger=False, enable_progress_bar=False, enable_job_control=False)
    batch = {"a": [torch.ones(2), (torch.zeros(1), Pair(torch.ones(1), 3))], "n": "name"}
    moved = trainer._move(batch)  # what a CUDA run does to each batch
    pair = moved["a"][1][1]
    assert type(pair) is Pair and pair.y == 3 and torch.equal(pair.x, torch.ones(1))
    assert isinstance(moved["a"], list) and type(moved["a"][1]) is tuple
    assert moved["n"] == "name"
