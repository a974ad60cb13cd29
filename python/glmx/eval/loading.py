"""Getting a GPN network from what a user holds: a module, a glmx checkpoint, a Hugging Face GPN
directory (``config.json`` + ``model.safetensors``), or a file of weights in the Hugging Face
layout of the released model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from glmx.errors import CheckpointError


def as_network(model: Any) -> torch.nn.Module:
    """The bare network (``GPN``) inside ``model`` (a ``GPNModule`` or ``GPN``), or a path
    loaded with :func:`load_model`."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    inner = getattr(model, "model", None)
    if isinstance(inner, torch.nn.Module) and hasattr(inner, "hidden_states"):
        return inner
    if isinstance(model, torch.nn.Module) and hasattr(model, "hidden_states"):
        return model
    raise TypeError(
        f"expected a GPN, GPNModule or a checkpoint path, got {type(model).__name__}; a custom "
        "network needs forward(ids) -> logits and hidden_states(ids)"
    )


def load_model(
    path: str | os.PathLike[str],
    map_location: str = "cpu",
    *,
    allow_pickle: bool = False,
    dilation_cycle: int | None = None,
) -> torch.nn.Module:
    """A :class:`glmx.models.GPN` in eval mode from ``path``:

    - a glmx run directory (its last checkpoint) or a ``checkpoint-<step>`` directory (also one
      copied out of its run's ``checkpoints/``);
    - a Hugging Face GPN directory (``config.json`` + ``model.safetensors``, as
      ``gpn.model.GPNForMaskedLM.save_pretrained`` writes it, ``encoder="bytenet"``); the
      config gives the size, dilation cycle and bias;
    - a ``.safetensors`` file of weights, in glmx's own layout or in the Hugging Face layout of
      the released GPN models (``model.encoder.layer.0.layer.2.weight`` ...), e.g.
      ``model.safetensors`` downloaded beforehand; the size is read from the weights.

    The dilation cycle is not visible in weights: ``dilation_cycle`` sets it; otherwise a run's
    ``.hydra/config.yaml`` (``model.config.dilation_cycle``) gives it, else 8 (the released
    model's).

    Pickle files (``pytorch_model.bin``, ``.bin``, ``.pt``, ``.pth``, ``.ckpt``) can run code when loaded: they are
    refused unless ``allow_pickle=True``, and then read with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: when nothing loadable is found, a file is unreadable or truncated, a
            pickle file is refused, or the weights do not fit a GPN (naming the file).
    """
    from glmx.models.gpn import GPN, config_from_state_dict, from_hf_state_dict
    from glmx.models.gpn_hf import is_hf_dir, load_hf_dir

    p = Path(path)
    if is_hf_dir(p):
        return load_hf_dir(p, allow_pickle=allow_pickle).to(map_location).eval()
    if p.is_dir():
        state = _from_glmx_checkpoint(p)
        if dilation_cycle is None:
            dilation_cycle = _run_dilation_cycle(p)
    elif p.is_file():
        state = _read_weights(p, allow_pickle)
    else:
        raise CheckpointError(f"model path '{p}' does not exist")
    try:
        if any(k.startswith(("model.encoder.", "model.embeddings.", "cls.decoder")) for k in state):
            state = from_hf_state_dict(state)
        state = {k.removeprefix("model."): v for k, v in state.items()}
        cfg = config_from_state_dict(state, dilation_cycle=dilation_cycle or 8)
    except ValueError as err:
        hint = ""
        if "embedding.weight" in str(err) and p.is_file():
            # one_hot GPNs have no embedding matrix; only their config.json says so
            hint = (
                " (weights of a one_hot GPN carry no embedding matrix: load the Hugging Face "
                "directory with its config.json instead of the bare weights file)"
            )
        raise CheckpointError(f"'{p}': {err}{hint}") from None
    net = GPN(cfg)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as err:
        msg = str(err).strip().splitlines()
        raise CheckpointError(f"weights in '{p}' do not fit a GPN: {' '.join(msg)[:400]}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"weights in '{p}' do not fit a GPN: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return net.to(map_location).eval()


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".tar")


def _read_weights(p: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    suffix = p.suffix.lower()  # `model.PT`, `weights.pth.tar`
    if suffix == ".safetensors":
        from glmx.models.gpn_hf import _load_safetensors

        return _load_safetensors(p)
    if suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"'{p}' is not a weights file; expected a run directory, a checkpoint directory, a "
            "Hugging Face GPN directory (config.json + model.safetensors), a .safetensors file, "
            f"or a {'/'.join(PICKLE_SUFFIXES)} pickle with allow_pickle=True (--allow-pickle)"
        )
    if not allow_pickle:
        raise CheckpointError(
            f"'{p}' is a pickle file, which can run code when loaded; convert it to "
            ".safetensors, or pass allow_pickle=True (CLI: --allow-pickle) if you trust it "
            "(it is then read with torch.load(weights_only=True))"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise CheckpointError(f"cannot read '{p}': {err}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"'{p}' does not hold a state dict (names to tensors)")
    return obj


def _from_glmx_checkpoint(p: Path) -> dict[str, torch.Tensor]:
    from glmx.ckpt import CheckpointManager

    if p.name.startswith("checkpoint-") and p.parent.name == "checkpoints":
        manager, which = CheckpointManager(p.parent.parent), str(p)
    elif (p / "checkpoint_manifest.json").is_file():
        # one checkpoint directory copied out of its run (e.g. shared on its own)
        manager, which = CheckpointManager(p.parent), str(p)
    else:
        manager, which = CheckpointManager(p), "last"
    try:
        loaded = manager.load(which, components=[])
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise CheckpointError(f"no loadable glmx checkpoint at '{p}': {err}") from err
    return dict(loaded["model"])


def _run_dilation_cycle(p: Path) -> int | None:
    """``model.config.dilation_cycle`` of the run's saved Hydra config, when it is a number."""
    run = p.parent.parent if p.parent.name == "checkpoints" else p
    cfg_file = run / ".hydra" / "config.yaml"
    if not cfg_file.is_file():
        return None
    import yaml

    try:
        cfg = yaml.safe_load(cfg_file.read_text())
        value = cfg["model"]["config"]["dilation_cycle"]
    except (yaml.YAMLError, OSError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value > 0 else None
