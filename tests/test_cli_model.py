"""`glmx model test`: builds a model from a preset, a config or a checkpoint and runs one
training step on a random batch."""

from __future__ import annotations

from pathlib import Path

import torch
from cli_helpers import glmx, ok
from safetensors.torch import save_file

from glmx.models import GPN, GPNConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_preset_reports_parameters_memory_time_and_finite_loss():
    out = ok("model", "test", "--device", "cpu", "--seq-len", "64", "--steps", "2")
    n = sum(p.numel() for p in GPN(GPNConfig.tiny()).parameters())
    assert f"parameters: {n:,}" in out
    assert "memory: process peak RSS" in out and "ms over 2" in out and "tokens/s" in out
    assert "ok: loss and gradients are finite" in out


def test_hydra_model_config_and_checkpoint(tmp_path):
    out = ok(
        "model",
        "test",
        str(CONFIGS / "model" / "gpn_tiny.yaml"),
        "--device",
        "cpu",
        "--seq-len",
        "32",
    )
    assert "glmx.models.gpn.GPNModule" in out and "ok:" in out
    torch.manual_seed(0)
    net = GPN(GPNConfig(hidden_size=16, n_layers=2))
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    out = ok("model", "test", str(tmp_path / "w.safetensors"), "--device", "cpu", "--seq-len", "32")
    assert f"parameters: {sum(p.numel() for p in net.parameters()):,}" in out


def test_non_finite_loss_fails(tmp_path):
    net = GPN(GPNConfig(hidden_size=16, n_layers=2))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    state["head.weight"] = torch.full_like(state["head.weight"], float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"))
    r = glmx(
        "model", "test", str(tmp_path / "nan.safetensors"), "--device", "cpu", "--seq-len", "16"
    )
    assert r.returncode == 1 and "FAILED" in r.stderr


def test_bad_source_is_one_line_exit_2(tmp_path):
    r = glmx("model", "test", "nonexistent-thing", "--device", "cpu")
    assert r.returncode == 2 and "is not a preset (tiny, released)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.yaml").write_text("hidden: 3\n")
    r = glmx("model", "test", str(tmp_path / "bad.yaml"), "--device", "cpu")
    assert r.returncode == 2 and "_target_" in r.stderr
    r = glmx("model", "test", "--device", "cpu", "--seq-len", "0")
    assert r.returncode == 2 and "--seq-len must be >= 1" in r.stderr
