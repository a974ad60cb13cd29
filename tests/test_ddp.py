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
