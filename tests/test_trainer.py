"""`glmx.Trainer` with Lightning-style modules on CPU: loop semantics, logging, callbacks."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx
from glmx.trainer import CSVLogger, JsonLogger, TensorBoardLogger


def regression_data(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return TensorDataset(x, y)


class LitRegression(glmx.Module):
    """Written as a LightningModule; only the base class differs."""

    def __init__(self, lr: float = 0.05, sched: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)
        self.seen_hooks: list[str] = []

    def forward(self, x):
        return self.layer(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test/loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        if self.hparams.sched == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if self.hparams.sched == "epoch":
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]
        return opt

    def on_train_epoch_start(self):
        self.seen_hooks.append(f"epoch_start{self.current_epoch}")

    def on_train_epoch_end(self):
        self.seen_hooks.append(f"epoch_end{self.current_epoch}")


def loaders(batch_size: int = 8):
    train = DataLoader(regression_data(64), batch_size=batch_size, shuffle=False)
    val = DataLoader(regression_data(32, seed=1), batch_size=16)
    return train, val


def test_fit_reduces_loss_and_counts_steps(tmp_path):
    model = LitRegression()
    train, val = loaders()
    trainer = glmx.Trainer(
        max_epochs=5, default_root_dir=tmp_path, enable_progress_bar=False, log_every_n_steps=4
    )
    before = trainer.validate(model, val)[0]["val/loss"]
    trainer = glmx.Trainer(
        max_epochs=5, default_root_dir=tmp_path, enable_progress_bar=False, log_every_n_steps=4
    )
    trainer.fit(model, train, val)
    assert trainer.global_step == 40
    assert trainer.current_epoch == 5
    after = trainer.callback_metrics_float("val/loss")
    assert after is not None and after < before / 10
    assert model.seen_hooks[:2] == ["epoch_start0", "epoch_end0"]
    assert model.hparams.lr == 0.05


def test_json_csv_tensorboard_logs_are_written(tmp_path):
    model = LitRegression()
    train, val = loaders()
    trainer = glmx.Trainer(
        max_steps=12,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        log_every_n_steps=4,
        logger=[JsonLogger(), CSVLogger(), TensorBoardLogger()],
    )
    trainer.fit(model, train, val)
    records = [
        json.loads(line) for line in (tmp_path / "trainer_logs.json").read_text().splitlines()
    ]
    steps = [r["global_step"] for r in records if "train/loss" in r]
    assert steps == [1, 4, 8, 12]
    assert all({"timestamp", "epoch"} <= set(r) for r in records)
    assert any("perf/samples_per_sec" in r for r in records)
    assert any("val/loss" in r for r in records)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"global_step", "epoch", "train/loss", "val/loss"} <= set(header)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 100


def test_accumulation_clipping_and_limits(tmp_path):
    model = LitRegression()
    train, _ = loaders()
    trainer = glmx.Trainer(
        max_epochs=2,
        accumulate_grad_batches=3,
        gradient_clip_val=0.5,
        limit_train_batches=7,
        logger=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, train)
    # 7 batches per epoch, accumulate 3 -> steps after batches 3, 6 and the remainder: 3 per epoch.
    assert trainer.global_step == 6
    assert trainer.fit_loop.last_grad_norm is not None


def test_step_and_epoch_schedulers(tmp_path):
    train, _ = loaders()
    model = LitRegression(sched="step")
    trainer = glmx.Trainer(max_steps=3, logger=False, enable_progress_bar=False)
    trainer.fit(model, train)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**3)
    model = LitRegression(sched="epoch")
    trainer = glmx.Trainer(max_epochs=2, logger=False, enable_progress_bar=False)
    trainer.fit(model, train)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**2)


def test_deterministic_runs_are_bit_identical(tmp_path):
    def run():
        glmx.seed_everything(7)
        model = LitRegression()
        train = DataLoader(regression_data(64), batch_size=8, shuffle=True)
        losses = []

        class Record(glmx.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                losses.append(outputs.item())

        glmx.Trainer(
            max_epochs=2,
            deterministic=True,
            logger=False,
            enable_progress_bar=False,
            callbacks=[Record()],
        ).fit(model, train)
        return losses

    assert run() == run()


def test_training_step_returning_none_skips_the_batch():
    class SkipOdd(LitRegression):
        def training_step(self, batch, batch_idx):
            return None if batch_idx % 2 else super().training_step(batch, batch_idx)

    trainer = glmx.Trainer(max_epochs=1, logger=False, enable_progress_bar=False)
    trainer.fit(SkipOdd(), loaders()[0])
    assert trainer.global_step == 4


def test_nan_loss_stops_with_the_step():
    class Explode(LitRegression):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * float("nan") if self.global_step == 2 else loss

    trainer = glmx.Trainer(max_epochs=1, logger=False, enable_progress_bar=False)
    with pytest.raises(glmx.TrainError, match="loss is NaN at global step 2"):
        trainer.fit(Explode(), loaders()[0])


def test_nan_loss_deferred_as_on_an_accelerator_names_the_first_bad_step(tmp_path):
    """On an accelerator the losses are read every 50 steps, at log steps and before a save
    (no per-step host-device sync); the error still names the first bad step and no
    checkpoint is written past it. Forced here on CPU (``immediate=False``)."""
    from glmx.trainer._nonfinite import NonfiniteWatch

    class Explode(LitRegression):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * float("nan") if self.global_step == 2 else loss

    trainer = glmx.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        callbacks=[glmx.ModelCheckpoint(every_n_train_steps=3, save_last=False)],
    )
    trainer.fit_loop.nonfinite = NonfiniteWatch(check_every=1000, immediate=False)
    with pytest.raises(glmx.TrainError, match="loss is NaN at global step 2"):
        trainer.fit(Explode(), loaders()[0])
    assert trainer.global_step == 3  # found at the step-3 save, before it was written
    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))

    watch = NonfiniteWatch(check_every=3, immediate=False)
    watch.add(torch.tensor(1.0), 0, 0, 0)
    watch.add(torch.tensor(float("inf")), 1, 0, 1)
    with pytest.raises(
        glmx.TrainError, match="loss is inf at global step 1 \\(epoch 0, batch 1\\)"
    ):
        watch.add(torch.tensor(float("nan")), 2, 0, 2)  # the third fills the window
    # the error stays: a caller that caught it (a control-channel save) cannot make the run
    # forget it, and it still names step 1
    with pytest.raises(glmx.TrainError, match="at global step 1 "):
        watch.add(torch.tensor(1.0), 3, 0, 3)
    with pytest.raises(glmx.TrainError, match="at global step 1 "):
        watch.check()
    watch.clear()  # a new fit starts clean
    watch.add(torch.tensor(1.0), 0, 0, 0)
    watch.check()


def test_user_exception_surfaces_unchanged():
    class Broken(LitRegression):
        def training_step(self, batch, batch_idx):
            if batch_idx == 3:
                raise ValueError("user bug in batch 3")
            return super().training_step(batch, batch_idx)

    with pytest.raises(ValueError, match="user bug in batch 3"):
        glmx.Trainer(max_epochs=1, logger=False, enable_progress_bar=False).fit(
            Broken(), loaders()[0]
        )


def test_wrong_configure_optimizers_names_the_forms():
    class Bad(LitRegression):
        def configure_optimizers(self):
            return "adam"

    with pytest.raises(glmx.TrainError, match="configure_optimizers must return one of"):
        glmx.Trainer(max_epochs=1, logger=False, enable_progress_bar=False).fit(Bad(), loaders()[0])


def test_early_stopping_and_missing_metric_message():
    train, val = loaders()
    stop = glmx.EarlyStopping(monitor="val/loss", patience=1, min_delta=1e9)
    trainer = glmx.Trainer(max_epochs=20, logger=False, enable_progress_bar=False, callbacks=[stop])
    trainer.fit(LitRegression(), train, val)
    assert trainer.current_epoch == 2 and "did not improve" in stop.stop_reason
    bad = glmx.EarlyStopping(monitor="val/acc")
    with pytest.raises(glmx.TrainError, match=r"monitors 'val/acc'.*logged metrics: .*val/loss"):
        glmx.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, callbacks=[bad]).fit(
            LitRegression(), train, val
        )


def test_lr_monitor_logs_learning_rate(tmp_path):
    train, _ = loaders()
    trainer = glmx.Trainer(
        max_steps=4,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
        logger=[JsonLogger()],
        enable_progress_bar=False,
        callbacks=[glmx.LearningRateMonitor()],
    )
    trainer.fit(LitRegression(sched="step"), train)
    records = [json.loads(x) for x in (tmp_path / "trainer_logs.json").read_text().splitlines()]
    lrs = [r["lr-SGD"] for r in records if "lr-SGD" in r]
    assert lrs[:2] == pytest.approx([0.05, 0.025])


def test_fast_dev_run_and_test_predict():
    train, val = loaders()
    trainer = glmx.Trainer(fast_dev_run=True, enable_progress_bar=False)
    model = LitRegression()
    trainer.fit(model, train, val)
    assert trainer.global_step == 1
    result = glmx.Trainer(logger=False, enable_progress_bar=False).test(model, val)
    assert "test/loss" in result[0]
    preds = glmx.Trainer(logger=False, enable_progress_bar=False).predict(
        model, [[torch.randn(3, 4)]]
    )
    assert preds[0].shape == (3,)


def test_bf16_mixed_on_cpu_trains():
    trainer = glmx.Trainer(
        max_steps=5, precision="bf16-mixed", logger=False, enable_progress_bar=False
    )
    trainer.fit(LitRegression(), loaders()[0])
    assert trainer.global_step == 5
    with pytest.raises(glmx.TrainError, match="16-mixed' needs CUDA"):
        glmx.Trainer(
            max_steps=1, precision="16-mixed", logger=False, enable_progress_bar=False
        ).fit(LitRegression(), loaders()[0])


def test_cosine_and_warmup_schedules():
    from glmx.trainer import constant_with_warmup, cosine_with_warmup

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = constant_with_warmup(opt, warmup_steps=4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_with_warmup(opt, warmup_steps=2, total_steps=10, min_lr_ratio=0.1)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert (
        lrs[1] == pytest.approx(1.0)
        and lrs[6] == pytest.approx(0.55)
        and lrs[10] == pytest.approx(0.1)
    )
    with pytest.raises(glmx.TrainError, match="total_steps"):
        cosine_with_warmup(opt, warmup_steps=5, total_steps=5)


def test_val_check_interval_and_overfit_batches(tmp_path):
    train, val = loaders()
    seen = []

    class Count(glmx.Callback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                seen.append(trainer.global_step)

    glmx.Trainer(
        max_epochs=1,
        val_check_interval=0.5,
        logger=False,
        enable_progress_bar=False,
        callbacks=[Count()],
    ).fit(LitRegression(), train, val)
    assert seen == [4, 8]
    trainer = glmx.Trainer(max_epochs=3, overfit_batches=2, logger=False, enable_progress_bar=False)
    trainer.fit(LitRegression(), train)
    assert trainer.global_step == 6 and trainer.callback_metrics_float("val/loss") is not None
