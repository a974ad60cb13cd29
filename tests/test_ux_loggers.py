"""MLflow, Weights & Biases (offline) and TensorBoard loggers, read back with each library."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import glmx
from glmx.trainer import MLFlowLogger, TensorBoardLogger, WandbLogger


class Lit(glmx.Module):
    def __init__(self, lr: float = 0.05, width: int = 4):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y))
        if batch_idx == 0 and isinstance(self.trainer.logger, TensorBoardLogger):
            self.trainer.logger.log_image("val/sample", torch.rand(3, 8, 8))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _fit(tmp_path: Path, logger, **kw) -> glmx.Trainer:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = TensorDataset(x, x.sum(-1))
    t = glmx.Trainer(
        max_epochs=2,
        default_root_dir=tmp_path,
        logger=logger,
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_job_control=False,
        callbacks=[glmx.ModelCheckpoint(monitor="val/loss")],
        **kw,
    )
    t.fit(Lit(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
    return t


def test_mlflow_file_store_params_metrics_tags_artifacts(tmp_path):
    pytest.importorskip("mlflow", reason="MLFlowLogger needs the 'mlflow' extra")
    from mlflow.tracking import MlflowClient

    lg = MLFlowLogger(
        experiment_name="ux",
        run_name="tiny",
        save_dir=tmp_path / "mlruns",
        tags={"team": "glm"},
        log_model=True,
    )
    _fit(tmp_path, lg)
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run = client.get_run(lg.run_id)
    assert run.data.params["lr"] == "0.05" and run.data.params["width"] == "4"
    assert run.data.tags["team"] == "glm" and run.data.tags["mlflow.runName"] == "tiny"
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(lg.run_id, "val/loss")
    assert [m.step for m in history] == [4, 8]
    assert len(client.get_metric_history(lg.run_id, "train/loss")) >= 3
    names = [a.path for a in client.list_artifacts(lg.run_id, "checkpoints")]
    assert names and all(n.startswith("checkpoints/checkpoint-") for n in names)


def test_wandb_offline_run_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="WandbLogger needs the 'wandb' extra")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    lg = WandbLogger(name="tiny", save_dir=tmp_path, project="ux")
    assert lg.offline  # no key: offline
    _fit(tmp_path, lg)
    lg.finish()
    from wandb.proto import wandb_internal_pb2

    files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, list((tmp_path / "wandb").rglob("*"))
    deadline = time.monotonic() + 30  # wandb's service may still be writing the file
    while True:
        history, config, kinds = [], {}, set()
        for data in _wandb_records(files[0].read_bytes()):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(data)
            kind = rec.WhichOneof("record_type")
            kinds.add(kind)
            if kind == "history":
                history.append(
                    {i.key or "/".join(i.nested_key): i.value_json for i in rec.history.item}
                )
            elif kind == "config":
                config.update({i.key: i.value_json for i in rec.config.update})
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert config.get("lr") == "0.05" and config.get("width") == "4"
    val = [h for h in history if "val/loss" in h]
    assert [int(h["trainer/global_step"]) for h in val] == [4, 8]


def _wandb_records(raw: bytes):
    """The payloads of a ``.wandb`` file (W&B's LevelDB-style log: a 7-byte ``:W&B`` header,
    then 32 KiB blocks of records with a 7-byte header: crc32, length, type)."""
    assert raw[:4] == b":W&B", raw[:8]
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length = int.from_bytes(raw[pos + 4 : pos + 6], "little")
        kind = raw[pos + 6]
        if kind == 0 and length == 0:
            break
        data = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield data
        elif kind == 2:
            parts = data
        elif kind == 3:
            parts += data
        elif kind == 4:
            yield parts + data


def test_tensorboard_hparams_epoch_and_images(tmp_path):
    pytest.importorskip("tensorboard", reason="reading events needs the 'tb' extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    t = _fit(tmp_path, TensorBoardLogger())
    acc = EventAccumulator(str(t.logger.log_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "epoch" in tags["scalars"] and "val/loss" in tags["scalars"]
    assert [e.value for e in acc.Scalars("epoch")][-1] == 1.0
    assert "val/sample" in tags["images"]
    content = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in content and "_hparams_/session_start_info" in content
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["lr"].number_value == 0.05
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "val/loss" in {m.name.tag for m in exp.metric_infos}


def test_missing_extra_is_one_line(monkeypatch):
    import sys

    from glmx._optional import MissingDependencyError

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match=r"glmx\[mlflow\]"):
        MLFlowLogger()
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingDependencyError, match=r"glmx\[wandb\]"):
        WandbLogger()
