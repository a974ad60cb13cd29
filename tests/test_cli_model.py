"""`glmx model test`: builds a model from a preset, a config or a checkpoint and runs one
training step on a random batch. One run goes through a subprocess as a shell would; the rest
call the same entry point (`glmx.cli.main`) in-process to keep the suite fast."""

from __future__ import annotations

from pathlib import Path

import torch
from cli_helpers import ok
from safetensors.torch import save_file

from glmx.cli import main
from glmx.models import GPN, GPNConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``glmx ARGS`` in-process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_preset_reports_parameters_memory_time_and_finite_loss():
    out = ok("model", "test", "--device", "cpu", "--seq-len", "64", "--steps", "2")
    n = sum(p.numel() for p in GPN(GPNConfig.tiny()).parameters())
    assert f"parameters: {n:,}" in out
    assert "memory: process peak RSS" in out and "ms over 2" in out and "tokens/s" in out
    assert "ok: loss and gradients are finite" in out


def test_hydra_model_config_and_checkpoint(tmp_path, capsys):
    yaml_path = str(CONFIGS / "model" / "gpn_tiny.yaml")
    code, out, _ = run(capsys, "model", "test", yaml_path, "--device", "cpu", "--seq-len", "32")
    assert code == 0 and "glmx.models.gpn.GPNModule" in out and "ok:" in out
    torch.manual_seed(0)
    net = GPN(GPNConfig(hidden_size=16, n_layers=2))
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    code, out, _ = run(capsys, "model", "test", str(weights), "--device", "cpu", "--seq-len", "32")
    assert code == 0 and f"parameters: {sum(p.numel() for p in net.parameters()):,}" in out


def test_project_config_model_target(tmp_path, capsys):
    assert run(capsys, "project", "create", str(tmp_path / "proj"))[0] == 0
    proj = str(tmp_path / "proj")
    code, out, _ = run(
        capsys, "model", "test", "-p", proj, "-t", "tiny_cpu.yaml", "--seq-len", "32"
    )
    assert code == 0 and "from tiny_cpu.yaml (target 'model')" in out and "ok:" in out


def test_non_finite_loss_fails(tmp_path, capsys):
    net = GPN(GPNConfig(hidden_size=16, n_layers=2))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    state["head.weight"] = torch.full_like(state["head.weight"], float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"))
    code, _, err = run(
        capsys, "model", "test", str(tmp_path / "nan.safetensors"), "--seq-len", "16"
    )
    assert code == 1 and "FAILED" in err


def test_bad_source_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "model", "test", "nonexistent-thing", "--device", "cpu")
    assert code == 2 and "is not a preset (tiny, released)" in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "bad.yaml").write_text("hidden: 3\n")
    code, _, err = run(capsys, "model", "test", str(tmp_path / "bad.yaml"), "--device", "cpu")
    assert code == 2 and "_target_" in err
    code, _, err = run(capsys, "model", "test", "--device", "cpu", "--seq-len", "0")
    assert code == 2 and "--seq-len must be >= 1" in err
    (tmp_path / "broken.yaml").write_text("_target_: torch.nn.Linear\nin_features: [1\n")
    code, _, err = run(capsys, "model", "test", str(tmp_path / "broken.yaml"), "--device", "cpu")
    assert code == 2 and f"{tmp_path / 'broken.yaml'}:3:1: not valid YAML" in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "wrong.yaml").write_text("_target_: torch.nn.Linear\nin_features: 2\nnope: 1\n")
    code, _, err = run(capsys, "model", "test", str(tmp_path / "wrong.yaml"), "--device", "cpu")
    assert code == 2 and "cannot build torch.nn.Linear" in err and "nope" in err
    assert len(err.strip().splitlines()) == 1
