"""What a user sees: model summary, progress bar (terminal, piped, rich), end-of-run summary."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from cli_helpers import run_in_pty

import glmx
from glmx.errors import TrainError
from glmx.trainer import ModelSummary, ProgressBar, RichProgressBar, RunSummary
from glmx.trainer.model_summary import format_summary, human_count, summarize

RUN = textwrap.dedent(
    """
    import logging, sys, torch
    from torch.utils.data import DataLoader, TensorDataset
    import glmx

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

    class Lit(glmx.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
            self.head = torch.nn.Linear(8, 1)
            self.head.requires_grad_(False)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.head(self.body(x)).squeeze(-1), y)
            self.log("train/loss", loss, prog_bar=True)
            if self.global_step == 5 and batch_idx == 5:
                logging.getLogger("glmx.user").info("halfway there")
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val/loss", torch.nn.functional.mse_loss(self.head(self.body(x)).squeeze(-1), y))

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test/loss", torch.nn.functional.mse_loss(self.head(self.body(x)).squeeze(-1), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.body.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    data = TensorDataset(x, x.sum(-1))
    cb = [glmx.trainer.RichProgressBar()] if "rich" in sys.argv else []
    if "ckpt" in sys.argv:
        cb.append(glmx.ModelCheckpoint(monitor="val/loss"))
    t = glmx.Trainer(max_steps=12, default_root_dir=sys.argv[1], logger=False, callbacks=cb,
                     val_check_interval=4,
                     enable_job_control=False)
    t.fit(Lit(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=16))
    t.test(t.lightning_module, DataLoader(data, batch_size=16), verbose=False)
    """
)


def _run_in_pty(tmp_path: Path, *args: str) -> str:
    script = tmp_path / "run.py"
    script.write_text(RUN)
    code, out = run_in_pty([sys.executable, str(script), str(tmp_path / "out"), *args])
    assert code == 0, out
    return out


def test_model_summary_table_matches_lightning_layout():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    model[1].eval()
    model[1].requires_grad_(False)
    data = summarize(model, max_depth=1)
    assert [r["name"] for r in data["rows"]] == ["0", "1"]
    assert data["total_params"] == 40 + 16 and data["trainable_params"] == 40
    text = format_summary(data)
    lines = text.splitlines()
    assert lines[0].split("|")[1:] and [c.strip() for c in lines[0].split("|")] == [
        "",
        "Name",
        "Type",
        "Params",
        "Trainable",
        "Mode",
    ]
    assert "Linear" in lines[2] and "train" in lines[2]
    assert "BatchNorm1d" in lines[3] and "eval" in lines[3]
    assert "56        Total params" in text and "16        Non-trainable params" in text
    assert "Non-trainable params" in text and "Total estimated model params size (MB)" in text
    assert "1         Modules in eval mode" in text and "1         Modules in train mode" in text
    assert human_count(1234) == "1.2 K" and human_count(2e6) == "2.0 M"
    nested = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert [r["name"] for r in summarize(nested, -1)["rows"]] == ["0", "0.0"]
    assert summarize(nested, 0)["rows"] == []
    with pytest.raises(TrainError, match="max_depth"):
        ModelSummary(max_depth=-2)


def test_trainer_defaults_and_flags():
    t = glmx.Trainer(max_steps=1, logger=False, enable_job_control=False)
    kinds = {type(c) for c in t.callbacks}
    assert {ProgressBar, RunSummary, ModelSummary} <= kinds
    t = glmx.Trainer(
        max_steps=1,
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        enable_job_control=False,
    )
    assert not any(isinstance(c, (ModelSummary, ProgressBar, RunSummary)) for c in t.callbacks)


def test_terminal_bar_summary_and_logs_above_bar(tmp_path):
    out = _run_in_pty(tmp_path, "ckpt")
    # the model summary, Lightning's layout, printed once before training
    assert out.count("Total params") == 1 and "| Name" in out and "Sequential" in out
    assert "Non-trainable params" in out
    # a real bar: percentage, bar glyphs, step counts, rate, ETA and the metric
    final = [ln for ln in out.replace("\r", "\n").splitlines() if "12/12" in ln]
    assert final, out
    assert "100%|" in final[-1] and "it/s" in final[-1] and "train/loss=" in final[-1]
    assert "█" in final[-1] and "<" in final[-1]
    # the log record is on a line of its own, never glued to a bar
    lines = out.replace("\r", "\n").splitlines()
    record = [ln for ln in lines if "halfway there" in ln]
    assert record and all(ln.replace("\x1b[2K", "").startswith("INFO") for ln in record), record
    # the end-of-run summary
    assert "`Trainer.fit` stopped: `max_steps=12` reached." in out
    assert "Best ckpt path:" in out and "(val/loss=" in out
    assert "Last ckpt path:" in out and "Output dir:" in out and "Wall time:" in out
    assert "Test metrics: test/loss=" in out


def test_piped_output_prints_plain_lines(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    res = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr and "\x1b" not in res.stderr
    assert "12/12" in res.stderr and "`Trainer.fit` stopped: `max_steps=12` reached." in res.stderr


def test_rich_progress_bar_in_a_terminal(tmp_path):
    pytest.importorskip("rich", reason="RichProgressBar needs rich (extra 'progress')")
    out = _run_in_pty(tmp_path, "rich")
    assert "Epoch 0" in out and "12/12" in out
    assert "halfway there" in out and "`Trainer.fit` stopped" in out
    assert isinstance(RichProgressBar(), ProgressBar)


def test_shipped_callback_configs_instantiate():
    from glmx.hydra import instantiate

    root = Path(__file__).resolve().parents[1] / "configs" / "callbacks"
    import yaml

    bar = instantiate(yaml.safe_load((root / "rich_progress_bar.yaml").read_text()))
    summary = instantiate(yaml.safe_load((root / "model_summary.yaml").read_text()))
    assert isinstance(bar["rich_progress_bar"], RichProgressBar)
    assert isinstance(summary["model_summary"], ModelSummary)
    assert summary["model_summary"].max_depth == 1
