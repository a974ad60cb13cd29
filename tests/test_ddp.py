"""Two CPU processes with gloo (launched by torchrun) agree with one process on the same
global batch: parameters stay identical across ranks and match the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    import glmx

    class Net(glmx.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)
            self.log("train/loss", loss, sync_dist=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    per_device_batch, out = int(sys.argv[1]), sys.argv[2]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    data = DataLoader(TensorDataset(x, x.sum(-1)), batch_size=per_device_batch)
    torch.manual_seed(0)
    model = Net()
    trainer = glmx.Trainer(max_epochs=2, logger=False, enable_progress_bar=False,
                           enable_checkpointing=False, accelerator="cpu")
    trainer.fit(model, data)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    rank = trainer.global_rank
    with open(f"{out}.{rank}.json", "w") as f:
        json.dump({"params": flat, "step": trainer.global_step, "world": trainer.world_size}, f)
    """
)


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(script), "8", str(tmp_path / "single")],
        check=True,
        env=env,
        timeout=300,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            "4",
            str(tmp_path / "ddp"),
        ],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    single = json.loads((tmp_path / "single.0.json").read_text())
    rank0 = json.loads((tmp_path / "ddp.0.json").read_text())
    rank1 = json.loads((tmp_path / "ddp.1.json").read_text())
    assert rank0["world"] == rank1["world"] == 2
    assert rank0["step"] == rank1["step"] == single["step"] == 16
    assert rank0["params"] == rank1["params"], "DDP replicas diverged"
    torch.testing.assert_close(
        torch.tensor(rank0["params"]), torch.tensor(single["params"]), rtol=1e-5, atol=1e-6
    )


ES_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch, glmx
    from torch.utils.data import DataLoader, TensorDataset

    class Net(glmx.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

        def validation_step(self, batch, batch_idx):
            # unsynced metric: rank 0 never improves, rank 1 always does
            self.log("val/loss", 1.0 if self.global_rank == 0 else 1.0 / (self.current_epoch + 1))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x = torch.randn(32, 4)
    data = DataLoader(TensorDataset(x, x.sum(-1)), batch_size=4)
    trainer = glmx.Trainer(max_epochs=6, logger=False, enable_progress_bar=False,
                           enable_checkpointing=False, accelerator="cpu", num_sanity_val_steps=0,
                           callbacks=[glmx.EarlyStopping(monitor="val/loss", patience=1)])
    trainer.fit(Net(), data, data)
    with open(f"{sys.argv[1]}.{trainer.global_rank}.json", "w") as f:
        json.dump({"epoch": trainer.current_epoch, "step": trainer.global_step}, f)
    """
)


@pytest.mark.slow
def test_early_stopping_is_agreed_across_ranks(tmp_path):
    script = tmp_path / "ddp_es.py"
    script.write_text(ES_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "es"),
        ],
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"es.{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1], f"ranks stopped at different points: {ranks}"
    assert ranks[0]["epoch"] < 6
