"""What a glmx run shows in Jupyter (executed headless with nbclient, the venv's kernel): the
ipywidgets bar and what the executed notebook stores for it, the text fallback without
ipywidgets, the test bar, and the summaries; and the validation bar in a terminal."""

from __future__ import annotations

import sys
import textwrap

import pytest
from cli_helpers import run_in_pty

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat, nbclient")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbformat, nbclient")

RUN = textwrap.dedent(
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    import glmx

    class Net(glmx.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def _loss(self, batch):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

        def training_step(self, batch, batch_idx):
            loss = self._loss(batch)
            self.log("train/loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", self._loss(batch), prog_bar=True)

        def test_step(self, batch, batch_idx):
            self.log("test/loss", self._loss(batch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, x.sum(-1))
    trainer = glmx.Trainer(max_steps=40, val_check_interval=8, check_val_every_n_epoch=None,
                           default_root_dir=ROOT, logger=False, enable_job_control=False)
    trainer.fit(Net(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=16))
    trainer.test(dataloaders=DataLoader(data, batch_size=16), verbose=False)
    """
)
VIEW = "application/vnd.jupyter.widget-view+json"


def _execute(tmp_path, first: str) -> tuple[list, dict]:
    src = f"ROOT = {str(tmp_path / 'run')!r}\n" + RUN
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(first), nbformat.v4.new_code_cell(src)]
    )
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    outputs = nb.cells[1].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return outputs, state.get("state", {})


def _children(state: dict, model_id: str) -> list[dict]:
    box = state[model_id]
    assert box["model_name"] == "HBoxModel"
    return [state[c.removeprefix("IPY_MODEL_")] for c in box["state"]["children"]]


def test_widget_bar_as_the_executed_notebook_stores_it(tmp_path):
    pytest.importorskip("ipywidgets", reason="the widget bar needs ipywidgets (extra 'progress')")
    outputs, state = _execute(tmp_path, "import glmx")
    bars = [o for o in outputs if VIEW in o.get("data", {})]
    assert len(bars) == 2  # training, then testing
    train, test = bars
    # a viewer without widgets shows the bar's last line, not a widget repr
    text = train["data"]["text/plain"]
    assert text.startswith("Epoch 2: 100%|") and "| 40/40 [" in text, text
    assert "it/s" in text and "train/loss=" in text and "val/loss=" in text
    test_text = test["data"]["text/plain"]
    assert test_text.startswith("Testing: 100%|") and "| 4/4 [" in test_text, test_text
    progress, label = _children(state, train["data"][VIEW]["model_id"])
    assert progress["model_name"] == "IntProgressModel"
    s = progress["state"]
    assert (s["description"], s["value"], s["max"], s["bar_style"]) == (
        "Epoch 2",
        40,
        40,
        "success",
    )
    assert label["state"]["value"].startswith("<code>100% 40/40 [")
    assert "val/loss=" in label["state"]["value"]
    progress, label = _children(state, test["data"][VIEW]["model_id"])
    assert progress["state"]["description"] == "Testing" and progress["state"]["value"] == 4
    # the summaries go to stdout in a notebook (stderr output is coloured as an error)
    streams = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "Total params" in streams and "`Trainer.fit` stopped: `max_steps=40` reached." in streams
    assert "Last ckpt path:" in streams and "Test metrics: test/loss=" in streams


def test_text_fallback_without_ipywidgets(tmp_path):
    # as if ipywidgets were not installed: importing it fails, find_spec finds nothing
    outputs, state = _execute(tmp_path, "import sys\nsys.modules['ipywidgets'] = None")
    assert not state and not [o for o in outputs if VIEW in o.get("data", {})]
    shown = [o["data"]["text/plain"] for o in outputs if o.output_type == "display_data"]
    assert len(shown) == 2, shown
    assert shown[0].startswith("Epoch 2: 100%|") and "40/40" in shown[0] and "it/s" in shown[0]
    assert shown[1].startswith("Testing: 100%|") and "| 4/4 [" in shown[1], shown[1]
    assert not any(s.startswith(("'", '"')) for s in shown)  # a text line, not a quoted string


def test_validation_bar_in_a_terminal(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(f"ROOT = {str(tmp_path / 'run')!r}\n" + RUN)
    code, out = run_in_pty([sys.executable, str(script)])
    assert code == 0, out
    lines = out.replace("\r", "\n").replace("\x1b[2K", "").splitlines()
    # validation draws its own bar in place of the training bar, then training resumes
    assert any(ln.startswith("Validation: ") and "/4 [" in ln for ln in lines), out
    final = [ln for ln in lines if ln.startswith("Epoch 2: 100%|")]
    assert final and "val/loss=" in final[-1]
    # the test bar knows its total (trainer.num_test_batches), as Lightning's does
    assert any(ln.startswith("Testing: 100%|") and "| 4/4 [" in ln for ln in lines), out
