"""glmx.models.DnaTransformer: sizes, RoPE, the MLM loss, torch.compile and bf16 on CPU, and
`python -m glmx.train experiment=transformer_tiny_cpu`."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

import glmx
from glmx.models import DnaTransformer, TransformerConfig, TransformerMLM, weighted_mlm_loss
from glmx.models.transformer import apply_rope, rope_cache

REPO = Path(__file__).resolve().parents[1]
TINY = {"hidden_size": 32, "n_layers": 2, "n_heads": 2, "intermediate_size": 64}


def _configs(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / "model" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("mlp,tie", [("swiglu", False), ("gelu", True)])
def test_parameter_count_matches_config(mlp, tie):
    cfg = TransformerConfig(**TINY, mlp=mlp, tie_embeddings=tie)
    model = TransformerMLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters()
    if tie:
        assert model.head.weight is model.embedding.weight


def test_shipped_configs_sizes():
    base = TransformerConfig(**_configs("transformer_base")["config"])
    with torch.device("meta"):
        model = TransformerMLM(base)
    n = sum(p.numel() for p in model.parameters())
    assert n == base.num_parameters() == 99_123_456
    assert 90e6 < n < 110e6
    tiny = TransformerConfig(**_configs("transformer_tiny")["config"])
    assert sum(p.numel() for p in TransformerMLM(tiny).parameters()) == tiny.num_parameters()


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="n_heads"):
        TransformerConfig(hidden_size=30, n_heads=4)
    with pytest.raises(ValueError, match="mlp must be"):
        TransformerConfig(mlp="relu")


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    d, length = 16, 40
    cos, sin = rope_cache(length, d, 10000.0)
    q, k = torch.randn(d), torch.randn(d)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q.expand(length, d), cos, sin)[m]
        kn = apply_rope(k.expand(length, d), cos, sin)[n]
        return float(qm @ kn)

    for m, n, shift in [(3, 1, 10), (0, 7, 25), (12, 12, 20)]:
        assert score(m, n) == pytest.approx(score(m + shift, n + shift), rel=1e-5, abs=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), rel=1e-3)  # position matters
    # a rotation: norms are unchanged
    x = torch.randn(length, d)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def _mlm_batch(n: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 7, (n, length), generator=g)
    masked = torch.rand(n, length, generator=g) < 0.15
    masked[:, 0] = True
    return {
        "input_ids": torch.where(masked, torch.ones_like(tokens), tokens),
        "labels": torch.where(masked, tokens, torch.full_like(tokens, -100)),
        "loss_weight": torch.rand(n, length, generator=g) + 0.5,
    }


def test_masked_lm_loss():
    torch.manual_seed(0)
    module = DnaTransformer(TINY)
    batch = _mlm_batch(4, 24, seed=1)
    loss = module._loss(batch)
    logits = module(batch["input_ids"])
    assert logits.shape == (4, 24, 7)
    keep = batch["labels"] != -100
    ce = torch.nn.functional.cross_entropy(logits[keep], batch["labels"][keep], reduction="none")
    w = batch["loss_weight"][keep]
    torch.testing.assert_close(loss, (ce * w).sum() / w.sum())
    # near-uniform predictions at initialisation
    assert abs(float(loss.detach()) - math.log(7)) < 0.3
    # unmasked positions do not count: changing their weights leaves the loss unchanged
    other = dict(batch, loss_weight=torch.where(keep, batch["loss_weight"], 100.0))
    torch.testing.assert_close(
        weighted_mlm_loss(logits, other["labels"], other["loss_weight"]), loss
    )
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


class _Windows(Dataset):
    def __init__(self, n: int, length: int) -> None:
        self.batch = _mlm_batch(n, length, seed=3)

    def __len__(self) -> int:
        return self.batch["input_ids"].shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.batch.items()}


class _Recording(DnaTransformer):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.losses.append(float(loss.detach()))
        return loss


def _fit(steps: int, **trainer_kwargs) -> list[float]:
    torch.manual_seed(0)
    model = _Recording(TINY, lr=3e-3, warmup_steps=0)
    model.losses = []
    trainer = glmx.Trainer(
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        **trainer_kwargs,
    )
    trainer.fit(model, DataLoader(_Windows(8 * steps, 32), batch_size=8))
    return model.losses


def test_compile_inside_training_loop_matches_eager():
    # Trainer(compile=True) compiles the module's forward (inductor, C++ on CPU); its outputs,
    # hence the losses of every step, equal the eager ones. About 1 min on 2 cores: compiling.
    eager = _fit(4)
    compiled = _fit(4, compile=True)
    assert len(compiled) == 4
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_cpu_trains():
    fp32 = _fit(6)
    bf16 = _fit(6, precision="bf16-mixed")
    assert all(math.isfinite(x) for x in bf16)
    assert bf16[-1] < bf16[0]
    torch.testing.assert_close(torch.tensor(bf16), torch.tensor(fp32), rtol=0.05, atol=0.05)


def test_activation_checkpointing_gives_the_same_losses():
    plain = _fit(3)
    recomputed = _fit(3, activation_checkpointing=True)
    torch.testing.assert_close(torch.tensor(recomputed), torch.tensor(plain), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_train_entrypoint_experiment(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.train",
            "experiment=transformer_tiny_cpu",
            "trainer.max_steps=20",
            "trainer.val_check_interval=10",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
            "data.batch_size=8",
            "data.seq_len=128",
            f"paths.data_dir={tmp_path}/data",
            "extras.print_config=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = next(p for p in (tmp_path / "outputs").glob("*/*") if (p / "trainer_logs.json").exists())
    records = [json.loads(x) for x in (out / "trainer_logs.json").read_text().splitlines()]
    train = [r["train/loss"] for r in records if "train/loss" in r]
    assert train and all(math.isfinite(x) for x in train)
    assert any("val/loss" in r for r in records) and any("test/loss" in r for r in records)
    cfg = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert cfg["model"]["_target_"] == "glmx.models.DnaTransformer"
