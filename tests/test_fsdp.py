"""FSDP2 on CPU with gloo (2 processes launched by torchrun): the tiny DNA transformer's loss
curve equals DDP's, and a checkpoint written per rank by 2 ranks resumes on 1, 2 and 3 ranks with
the losses of the uninterrupted run.

Every run sees the same global batch at every step (6 windows, split evenly over 1, 2 or 3
ranks; every position carries a label with weight 1), so the mean of the per-rank losses is the
global loss whatever the world size."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from glmx.distributed import consolidate
from glmx.errors import CheckpointError

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from torch.utils.data import DataLoader, Dataset
    import glmx
    from glmx.models import DnaTransformer

    GLOBAL_BATCH = 6

    class Windows(Dataset):
        def __init__(self, n, length=32):
            g = torch.Generator().manual_seed(7)
            self.tokens = torch.randint(3, 7, (n, length), generator=g)
            self.masked = torch.rand(n, length, generator=g) < 0.15

        def __len__(self):
            return self.tokens.shape[0]

        def __getitem__(self, i):
            t = self.tokens[i]
            return {"input_ids": torch.where(self.masked[i], torch.ones_like(t), t),
                    "labels": t, "loss_weight": torch.ones(t.shape)}

    class Recording(DnaTransformer):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.losses.append(float(loss.detach()))
            return loss

    args = json.loads(sys.argv[1])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    results = {}
    for run in args["runs"]:  # several fits in one process group: one start-up for all
        torch.manual_seed(0)
        model = Recording({"hidden_size": 32, "n_layers": 3, "n_heads": 2,
                           "intermediate_size": 64}, lr=3e-3, warmup_steps=5)
        model.losses = []
        steps, accumulate = args["steps"], args["accumulate"]
        data = DataLoader(Windows(GLOBAL_BATCH * accumulate * steps),
                          batch_size=GLOBAL_BATCH // world)
        callbacks = []
        if run.get("save_every"):
            callbacks.append(glmx.ModelCheckpoint(dirpath=args["root"], save_top_k=-1,
                                                  every_n_train_steps=run["save_every"],
                                                  every_n_epochs=0, async_save=False))
        trainer = glmx.Trainer(
            max_steps=steps, max_epochs=1, logger=False, enable_progress_bar=False,
            enable_checkpointing=bool(callbacks), enable_model_summary=False,
            enable_job_control=False, accelerator="cpu", strategy=run["strategy"],
            callbacks=callbacks, accumulate_grad_batches=accumulate,
            gradient_clip_val=args["clip"], num_sanity_val_steps=0,
            default_root_dir=args["root"],
        )
        trainer.fit(model, data, ckpt_path=run.get("resume"))
        results[run["name"]] = {"losses": model.losses, "step": trainer.global_step}
    with open(f"{args['out']}.{rank}.json", "w") as f:
        json.dump({"runs": results, "world": world}, f)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp: Path, nproc: int, runs: list[dict], **args) -> dict[str, list[float]]:
    """Run the script on ``nproc`` ranks (one process each, as torchrun starts them); return
    each run's per-batch global losses (the mean over ranks)."""
    script = tmp / "fsdp_train.py"
    script.write_text(SCRIPT)
    out = tmp / f"out{nproc}"
    args = {"root": str(tmp / "run"), "out": str(out), "steps": 20, "accumulate": 2,
            "clip": 0.05, "runs": runs, **args}  # fmt: skip
    port = str(_free_port())
    procs = []
    for rank in range(nproc):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}  # fmt: skip
        if nproc == 1:
            for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(key)
        cmd = [sys.executable, str(script), json.dumps(args)]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode:
            errors.append(err[-3000:])
    assert not errors, "\n".join(errors)
    ranks = [json.loads(Path(f"{out}.{r}.json").read_text()) for r in range(nproc)]
    assert {r["world"] for r in ranks} == {nproc}
    return {
        name: torch.tensor([r["runs"][name]["losses"] for r in ranks]).mean(0).tolist()
        for name in ranks[0]["runs"]
    }


def _steps(losses: list[float], accumulate: int = 2) -> torch.Tensor:
    # the loss of a step: the mean over its accumulated batches
    return torch.tensor(losses).view(-1, accumulate).mean(1)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """DDP, then FSDP saving at step 10, then FSDP resumed from that checkpoint, on 2 ranks
    (20 steps of 2 accumulated batches; clipping at 0.05 is active at every step)."""
    tmp = tmp_path_factory.mktemp("fsdp")
    ckpt = tmp / "run" / "checkpoints" / "checkpoint-10"
    runs = [
        {"name": "ddp", "strategy": "ddp"},
        {"name": "fsdp", "strategy": "fsdp", "save_every": 10},
        {"name": "resume2", "strategy": "fsdp", "resume": str(ckpt)},
    ]
    return tmp, ckpt, _launch(tmp, 2, runs)


@pytest.mark.slow
def test_fsdp_loss_curve_equals_ddp(two_ranks):
    _, _, losses = two_ranks
    ddp, fsdp = losses["ddp"], losses["fsdp"]
    assert len(ddp) == len(fsdp) == 40
    torch.testing.assert_close(_steps(fsdp), _steps(ddp), rtol=1e-4, atol=0.0)
    assert ddp[-1] < ddp[0]


@pytest.mark.slow
def test_resharded_resume_continues_the_same_losses(two_ranks):
    tmp, ckpt, losses = two_ranks
    manifest = json.loads((ckpt / "checkpoint_manifest.json").read_text())
    shards = manifest["components"]["model_shards"]
    assert manifest["world_size"] == 2 and shards["sharing"] == "PER_RANK"
    layout = shards["metadata"]
    assert layout["layout"] == "fsdp2-dim0" and layout["world_size"] == 2
    qkv = layout["params"]["model.blocks.0.attn.qkv.weight"]
    assert qkv["shape"] == [96, 32] and qkv["rows"] == [[0, 48], [48, 96]]
    assert (ckpt / "model_shards_rank1.safetensors").exists()
    assert (ckpt / "optimizer_shards_rank1.safetensors").exists()
    full_weights = consolidate(ckpt)
    assert full_weights["model.blocks.0.attn.qkv.weight"].shape == (96, 32)
    with pytest.raises(CheckpointError, match="not a glmx checkpoint"):
        consolidate(tmp)
    full = losses["fsdp"]
    resumed = {2: losses["resume2"]}
    resumed[3] = _launch(tmp, 3, [{"name": "r", "strategy": "fsdp", "resume": str(ckpt)}])["r"]
    # one process: FSDP over a world of 1, and a plain (unsharded) module
    runs = [{"name": n, "strategy": n, "resume": str(ckpt)} for n in ("fsdp", "auto")]
    one = _launch(tmp, 1, runs)
    resumed[1], resumed["plain"] = one["fsdp"], one["auto"]
    for nproc, got in resumed.items():
        assert len(got) == 20, f"resume on {nproc} ran {len(got)} batches"
        torch.testing.assert_close(
            torch.tensor(got), torch.tensor(full[20:]), rtol=1e-4, atol=0.0,
            msg=lambda m, n=nproc: f"resume on {n}: {m}",
        )  # fmt: skip


def test_strategy_names_blocks_and_errors():
    import glmx
    from glmx.distributed import (
        FSDPStrategy,
        apply_activation_checkpointing,
        blocks_of,
        resolve_strategy,
    )
    from glmx.errors import TrainError
    from glmx.models import DnaTransformer, GPNModule

    with pytest.raises(TrainError, match="strategy must be one of"):
        glmx.Trainer(strategy="fsdp2", logger=False, enable_progress_bar=False)
    fsdp = resolve_strategy("fsdp", activation_checkpointing=True)
    assert isinstance(fsdp, FSDPStrategy) and fsdp.activation_checkpointing
    own = FSDPStrategy(cpu_offload=True)
    assert resolve_strategy(own) is own and resolve_strategy("ddp") == "ddp"
    # the units FSDP shards: the transformer's blocks, GPN's layers (its nn.ModuleList)
    assert len(blocks_of(DnaTransformer({"hidden_size": 16, "n_layers": 3, "n_heads": 2}))) == 3
    assert len(blocks_of(GPNModule({"hidden_size": 16, "n_layers": 5}))) == 5
    with pytest.raises(TrainError, match="has no blocks"):
        apply_activation_checkpointing(torch.nn.Linear(2, 2))
    trainer = glmx.Trainer(
        strategy="fsdp", precision="16-mixed", accelerator="cpu", logger=False,
        enable_progress_bar=False, enable_checkpointing=False, max_steps=1,
    )  # fmt: skip
    with pytest.raises(TrainError, match="bf16-mixed"):
        trainer.fit(DnaTransformer({"hidden_size": 16, "n_layers": 1, "n_heads": 2}), [])
