"""Trainer details checked against Lightning: the same tiny model and arguments run under glmx
and under Lightning (the `lightning` package of the bench extra), and what a callback or logger
sees must agree."""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx
import glmx.trainer

L = pytest.importorskip("lightning", reason="lightning (bench extra) is the reference")


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _loaders(n_train: int = 4, n_val: int = 2):
    g = torch.Generator().manual_seed(0)
    tr = TensorDataset(torch.randn(n_train, 4, generator=g), torch.randn(n_train, 1, generator=g))
    va = TensorDataset(torch.randn(n_val, 4, generator=g), torch.randn(n_val, 1, generator=g))
    return DataLoader(tr, batch_size=1), DataLoader(va, batch_size=1)


def _net(kind: str, log_kwargs: dict | None = None, val_kwargs: dict | None = None):
    base = glmx.Module if kind == "glmx" else L.LightningModule

    class Net(base):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, **(log_kwargs or {}))
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y), **(val_kwargs or {}))

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return Net()


def _trainer(kind: str, root, **kw):
    kw.setdefault("enable_progress_bar", False)
    kw.setdefault("enable_model_summary", False)
    if kind == "glmx":
        return glmx.Trainer(
            accelerator="cpu", default_root_dir=root, enable_job_control=False, **kw
        )
    return L.Trainer(accelerator="cpu", devices=1, default_root_dir=root, **kw)


def _floats(metrics: dict) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items()}


def _logger(kind: str, records: list[set[str]]):
    if kind == "glmx":

        class Rec(glmx.trainer.Logger):
            def log_metrics(self, metrics, step, epoch):
                records.append({k for k in metrics if "loss" in k})

        return Rec()

    class LRec(L.pytorch.loggers.Logger):
        name = "rec"
        version = "0"

        def log_hyperparams(self, params, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step=None):
            records.append({k for k in metrics if "loss" in k})

    return LRec()


def _run_step_epoch(kind: str, root):
    seen: list[tuple[str, dict[str, float]]] = []
    records: list[set[str]] = []
    base = glmx.Callback if kind == "glmx" else L.Callback

    class Watch(base):
        def on_train_batch_end(self, trainer, module, *args):
            seen.append(("batch", _floats(trainer.callback_metrics)))

        def on_validation_end(self, trainer, module):
            seen.append(("val", _floats(trainer.callback_metrics)))

    ES = glmx.EarlyStopping if kind == "glmx" else L.pytorch.callbacks.EarlyStopping
    MC = glmx.ModelCheckpoint if kind == "glmx" else L.pytorch.callbacks.ModelCheckpoint
    both = dict(on_step=True, on_epoch=True)
    trainer = _trainer(
        kind,
        root,
        max_epochs=2,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        logger=_logger(kind, records),
        callbacks=[
            Watch(),
            ES(monitor="train_loss", patience=5),
            MC(dirpath=root / "ck", monitor="val_loss", save_top_k=1),
        ],
    )
    trainer.fit(_net(kind, both, both), *_loaders())
    logged = set().union(*records)
    return seen, _floats(trainer.callback_metrics), logged


def test_on_step_and_on_epoch_keep_the_bare_name_as_lightning(tmp_path):
    ref = _run_step_epoch("lightning", tmp_path / "l")
    got = _run_step_epoch("glmx", tmp_path / "g")
    assert "train_loss" in got[1] and "val_loss" in got[1]
    assert got[0] == ref[0]  # per batch and after validation: names and values
    assert got[1] == ref[1]
    # loggers receive only the suffixed names (Lightning also logs each validation batch's
    # `val_loss_step` at its own step counter; glmx logs no per-batch evaluation values)
    assert got[2] == ref[2] - {"val_loss_step"}
    assert got[2] == {"train_loss_step", "train_loss_epoch", "val_loss_epoch"}
    assert not math.isnan(got[1]["train_loss"])


def _run_logged(kind: str, root):
    class Net(_net(kind).__class__):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.log("acc", loss * 2, on_step=True, on_epoch=True)
            self.log("hidden", loss * 3, on_step=False, on_epoch=True, logger=False)
            return loss

    records: list[set[str]] = []
    trainer = _trainer(
        kind,
        root,
        max_epochs=2,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_checkpointing=False,
        logger=_logger(kind, records),
    )
    trainer.fit(Net(), *_loaders())
    return _floats(trainer.logged_metrics), set().union(*records)


def test_logged_metrics_as_lightning(tmp_path):
    ref, ref_sent = _run_logged("lightning", tmp_path / "l")
    got, got_sent = _run_logged("glmx", tmp_path / "g")
    assert got == ref
    assert "hidden" not in got and "hidden" not in got_sent  # logger=False: callbacks only
    assert got_sent == ref_sent


def test_interrupted_after_a_failed_fit(tmp_path):
    for kind in ("lightning", "glmx"):

        class Boom(_net(kind).__class__):
            def training_step(self, batch, batch_idx):
                if batch_idx == 2:
                    raise ValueError("boom")
                return super().training_step(batch, batch_idx)

        trainer = _trainer(kind, tmp_path / kind, max_epochs=1, logger=False)
        assert trainer.interrupted is False
        with pytest.raises(ValueError, match="boom"):
            trainer.fit(Boom(), _loaders()[0])
        assert trainer.interrupted is True, kind


def _batch_end_outputs(kind: str, root, returns: str):
    seen: list = []
    base = glmx.Callback if kind == "glmx" else L.Callback

    class Keep(base):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if kind == "glmx" and returns != "dict":
                # glmx keeps a bare loss a tensor and None as None (Lightning: {"loss": ...}, {})
                outputs = {} if outputs is None else {"loss": outputs}
            seen.append({k: (v.requires_grad, round(float(v), 6)) for k, v in outputs.items()})

    class Net(_net(kind).__class__):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if returns == "none":
                return None
            return loss if returns == "tensor" else {"loss": loss, "extra": loss * 2}

    trainer = _trainer(
        kind, root, max_epochs=1, logger=False, enable_checkpointing=False, callbacks=[Keep()]
    )
    trainer.fit(Net(), _loaders()[0])
    return seen


@pytest.mark.parametrize("returns", ["tensor", "dict", "none"])
def test_train_batch_end_outputs_are_detached_as_lightning(tmp_path, returns):
    ref = _batch_end_outputs("lightning", tmp_path / "l", returns)
    got = _batch_end_outputs("glmx", tmp_path / "g", returns)
    assert got == ref
    if returns != "none":
        assert all(out["loss"][0] is False for out in got)


def _best_without_monitor(kind: str, root):
    MC = glmx.ModelCheckpoint if kind == "glmx" else L.pytorch.callbacks.ModelCheckpoint
    mc = MC(dirpath=root / "ck")
    trainer = _trainer(kind, root, max_epochs=2, logger=False, callbacks=[mc])
    train, val = _loaders()
    trainer.fit(_net(kind), train, val)
    assert mc.best_model_path, kind
    step = int(
        mc.best_model_path.rstrip("/")
        .split("step=" if kind == "lightning" else "-")[-1]
        .split(".")[0]
    )
    result = trainer.test(_net(kind), val, ckpt_path="best", verbose=False)
    return step, result


def test_best_model_path_without_monitor_is_the_latest_save(tmp_path):
    ref_step, ref = _best_without_monitor("lightning", tmp_path / "l")
    got_step, got = _best_without_monitor("glmx", tmp_path / "g")
    assert got_step == ref_step == 8
    assert [_floats(r) for r in got] == [_floats(r) for r in ref]


def _modes(kind: str, root, with_val: bool):
    seen: list[tuple] = []

    class Net(_net(kind).__class__):
        def __init__(self):
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)
            self.drop.eval()  # the user froze a submodule

        def training_step(self, batch, batch_idx):
            seen.append(("train", self.training, self.drop.training))
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch, batch_idx):
            seen.append(("val", self.training, self.drop.training))
            return super().validation_step(batch, batch_idx)

        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            return self.net(batch[0])

    train, val = _loaders(2, 1)
    trainer = _trainer(kind, root, max_epochs=2, logger=False, enable_checkpointing=False)
    model = Net()
    trainer.fit(model, train, val if with_val else None)
    trainer.predict(model, val)
    seen.append(("after", model.training, model.drop.training))
    return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]


@pytest.mark.parametrize("with_val", [True, False])
def test_submodule_modes_survive_fit_and_evaluation_as_lightning(tmp_path, with_val):
    ref = _modes("lightning", tmp_path / "l", with_val)
    got = _modes("glmx", tmp_path / "g", with_val)
    assert got == ref
    assert ("train", True, False) in got


def _early_stop(kind: str, root, es_kw: dict):
    seq = [5.0, 4.0, 4.05, 3.95, 4.02, 3.5, 9.0, 1.0, 0.5, 0.4]

    class Net(_net(kind).__class__):
        def validation_step(self, batch, batch_idx):
            self.log("score", seq[self.current_epoch])

    ES = glmx.EarlyStopping if kind == "glmx" else L.pytorch.callbacks.EarlyStopping
    es = ES(monitor="score", **es_kw)
    trainer = _trainer(
        kind,
        root,
        max_epochs=len(seq),
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        callbacks=[es],
    )
    trainer.fit(Net(), *_loaders())
    return trainer.current_epoch, es.wait_count, float(es.best_score), es.stopped_epoch


@pytest.mark.parametrize(
    "es_kw",
    [
        dict(patience=2, min_delta=-0.1),
        dict(patience=1, min_delta=0.02),
        dict(patience=5, divergence_threshold=8.0),
        dict(patience=5, mode="max", divergence_threshold=4.01),
    ],
)
def test_early_stopping_thresholds_as_lightning(tmp_path, es_kw):
    ref = _early_stop("lightning", tmp_path / "l", es_kw)
    got = _early_stop("glmx", tmp_path / "g", es_kw)
    assert got == pytest.approx(ref)
