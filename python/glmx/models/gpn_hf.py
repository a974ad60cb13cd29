"""Hugging Face interop with the reference GPN implementation (PyPI ``gpn``).

A Hugging Face GPN directory is what ``gpn.model.GPNForMaskedLM.save_pretrained`` writes:
``config.json`` (``model_type: GPN``) and ``model.safetensors`` (or a sharded
``model.safetensors.index.json``, or the pickle ``pytorch_model.bin``), usually with the
tokenizer files of ``PreTrainedTokenizerFast``. :func:`load_hf_dir` reads one into a glmx
:class:`~glmx.models.GPN`; :func:`save_hf_dir` writes a glmx GPN back in that layout, so
``transformers.AutoModelForMaskedLM.from_pretrained`` loads it after
``gpn.register_auto_classes("gpn")``.

Only the architecture glmx implements is accepted: ``encoder="bytenet"``, ``embedding`` either
``"embedding"`` or ``"one_hot"`` (the latter becomes an identity embedding matrix), no MLM head
transform, no depthwise convolutions, no auxiliary features, dilation ``2 ** (i % cycle)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from glmx.errors import CheckpointError
from glmx.models.gpn import GPN, VOCAB, GPNConfig, from_hf_state_dict, to_hf_state_dict

HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
HF_PICKLE = "pytorch_model.bin"


def is_hf_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding a Hugging Face ``config.json``."""
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file()


def _need(cfg: dict[str, Any], key: str, ok: Any, default: Any, where: Path) -> None:
    value = cfg.get(key, default)
    good = ok(value) if callable(ok) else value == ok
    if not good:
        raise CheckpointError(
            f"{where}: {key}={value!r} is not supported by glmx's GPN (needs {ok if not callable(ok) else 'a compatible value'}); "
            "only GPNForMaskedLM with encoder='bytenet', no MLM head transform, no depthwise "
            "convolutions and dilation 2**(i % cycle) loads"
        )


def config_from_hf(cfg: dict[str, Any], where: Path | str = "config.json") -> GPNConfig:
    """The :class:`GPNConfig` of a Hugging Face GPN ``config.json`` (as a dict).

    Defaults are those of ``gpn.model.GPNConfig`` for keys the file leaves out.

    Raises:
        CheckpointError: naming the first key whose value glmx's GPN cannot reproduce.
    """
    where = Path(where)
    _need(cfg, "model_type", "GPN", None, where)
    _need(cfg, "encoder", "bytenet", "convnet", where)
    _need(cfg, "embedding", lambda v: v in ("embedding", "one_hot"), "one_hot", where)
    _need(cfg, "mlm_head_transform", False, True, where)
    _need(cfg, "depthwise", False, False, where)
    _need(cfg, "n_aux_features", 0, 0, where)
    _need(cfg, "dilation_base", 2, 2, where)
    _need(cfg, "dilation_double_every", 1, 1, where)
    _need(cfg, "tie_word_embeddings", False, False, where)
    cycle = _num(cfg, "dilation_cycle", 8, int, where)
    _need(
        cfg,
        "dilation_max",
        lambda v: _num(cfg, "dilation_max", v, int, where) >= 2 ** (cycle - 1),
        9999,
        where,
    )
    return GPNConfig(
        vocab_size=_num(cfg, "vocab_size", 7, int, where),
        hidden_size=_num(cfg, "hidden_size", 512, int, where),
        n_layers=_num(cfg, "num_hidden_layers", 25, int, where),
        first_kernel_size=_num(cfg, "first_kernel_size", 9, int, where),
        rest_kernel_size=_num(cfg, "rest_kernel_size", 5, int, where),
        dilation_cycle=cycle,
        slim=bool(cfg.get("slim", False)),
        bias=bool(cfg.get("bias", False)),
        init_std=_num(cfg, "initializer_range", 0.02, float, where),
    )


def _num(cfg: dict[str, Any], key: str, default: Any, kind: type, where: Path) -> Any:
    """``cfg[key]`` as an ``int`` (>= 1) or ``float``, or a CheckpointError naming the key."""
    value = cfg.get(key, default)
    good = not isinstance(value, bool) and isinstance(value, (int, float))
    if kind is int:
        good = good and float(value).is_integer() and value >= 1
    if not good:
        need = "a positive integer" if kind is int else "a number"
        raise CheckpointError(f"{where}: {key}={value!r} is not {need}")
    return kind(value)


def config_to_hf(cfg: GPNConfig) -> dict[str, Any]:
    """The ``config.json`` of ``gpn.model.GPNForMaskedLM`` for ``cfg`` (bytenet encoder,
    learned embedding, no head transform)."""
    return {
        "architectures": ["GPNForMaskedLM"],
        "model_type": "GPN",
        "vocab_size": cfg.vocab_size,
        "embedding": "embedding",
        "encoder": "bytenet",
        "num_hidden_layers": cfg.n_layers,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.hidden_size // 2 if cfg.slim else cfg.hidden_size,
        "slim": cfg.slim,
        "bias": cfg.bias,
        "mlm_head_transform": False,
        "tie_word_embeddings": False,
        "first_kernel_size": cfg.first_kernel_size,
        "rest_kernel_size": cfg.rest_kernel_size,
        "dilation_cycle": cfg.dilation_cycle,
        "dilation_base": 2,
        "dilation_double_every": 1,
        "dilation_max": 9999,
        "depthwise": False,
        "n_aux_features": 0,
        "hidden_dropout_prob": 0.0,
        "initializer_range": cfg.init_std,
        "pad_token_id": 0,
    }


def _load_safetensors(path: Path, what: str = "") -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` with a CheckpointError naming the file on failure."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"'{path}'{what} does not exist")
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError: reported with the path
        raise CheckpointError(
            f"cannot read '{path}'{what}: not a complete .safetensors file ({err})"
        ) from None


def _read_index(p: Path) -> list[str]:
    """The shard file names of ``model.safetensors.index.json``."""
    try:
        index = json.loads((p / HF_INDEX).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read '{p / HF_INDEX}': {err}") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(
            f"'{p / HF_INDEX}' has no 'weight_map' object naming the shard of each weight"
        )
    shards = set(weight_map.values())
    bad = [s for s in shards if not isinstance(s, str) or "/" in s or s in ("", ".", "..")]
    if bad:
        raise CheckpointError(f"'{p / HF_INDEX}': weight_map names an invalid shard {bad[0]!r}")
    return sorted(shards)


def _read_hf_weights(p: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    if (p / HF_WEIGHTS).is_file():
        return _load_safetensors(p / HF_WEIGHTS)
    if (p / HF_INDEX).is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in _read_index(p):
            state.update(_load_safetensors(p / shard, f" (a shard listed in {HF_INDEX})"))
        return state
    if (p / HF_PICKLE).is_file():
        if not allow_pickle:
            raise CheckpointError(
                f"'{p / HF_PICKLE}' is a pickle file, which can run code when loaded; convert it "
                "to model.safetensors, or pass allow_pickle=True (--allow-pickle) if you trust "
                "it (it is then read with torch.load(weights_only=True))"
            )
        try:
            obj = torch.load(p / HF_PICKLE, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - reported with the path
            raise CheckpointError(f"cannot read '{p / HF_PICKLE}': {err}") from err
        if not isinstance(obj, dict):
            raise CheckpointError(f"'{p / HF_PICKLE}' does not hold a state dict")
        return obj
    raise CheckpointError(f"'{p}' has a config.json but no {HF_WEIGHTS}, {HF_INDEX} or {HF_PICKLE}")


def load_hf_dir(path: str | os.PathLike[str], allow_pickle: bool = False) -> GPN:
    """A glmx :class:`GPN` (eval mode, fp32, CPU) from a Hugging Face GPN directory.

    Raises:
        CheckpointError: for an unsupported config, missing or mismatched weights, or a
            ``pytorch_model.bin`` without ``allow_pickle=True``.
    """
    p = Path(path)
    try:
        raw = json.loads((p / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read '{p / 'config.json'}': {err}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"'{p / 'config.json'}' is not a JSON object")
    cfg = config_from_hf(raw, p / "config.json")
    hf_state = _read_hf_weights(p, allow_pickle)
    one_hot = raw.get("embedding", "one_hot") == "one_hot"
    if one_hot:
        hf_state["model.embeddings.word_embeddings.weight"] = torch.eye(
            cfg.vocab_size, cfg.hidden_size
        )
    try:
        state = from_hf_state_dict(hf_state)
    except ValueError as err:
        raise CheckpointError(f"'{p}': {err}") from None
    net = GPN(cfg)
    try:
        missing, unexpected = net.load_state_dict(
            {k: v.float() for k, v in state.items()}, strict=False
        )
    except RuntimeError as err:
        raise CheckpointError(f"weights in '{p}' do not fit its config.json: {err}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"weights in '{p}' do not fit its config.json: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return net.eval()


def save_hf_dir(net: GPN, out: str | os.PathLike[str], tokenizer: bool = True) -> Path:
    """Writes ``net`` as a Hugging Face GPN directory: ``config.json``, ``model.safetensors``
    (fp32, with ``{"format": "pt"}`` metadata) and, with ``tokenizer``, the files of the
    reference character tokenizer (``[PAD] [MASK] [UNK] a c g t``, lowercasing), so
    ``AutoTokenizer.from_pretrained(out)`` works as for the released models.

    Returns:
        The directory.
    """
    from safetensors.torch import save_file

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in to_hf_state_dict(net.state_dict()).items()
    }
    save_file(state, str(o / HF_WEIGHTS), metadata={"format": "pt"})
    (o / "config.json").write_text(json.dumps(config_to_hf(net.cfg), indent=2) + "\n")
    if tokenizer:
        write_tokenizer(o)
    return o


def write_tokenizer(out: Path) -> None:
    """The reference tokenizer (``gpn/ss/train_tokenizer_ss.py``: BPE over ``acgt`` with no
    merges, lowercase normaliser, whitespace pre-tokenizer) saved with
    ``PreTrainedTokenizerFast.save_pretrained``, its ``tokenizer_class`` set to
    ``PreTrainedTokenizerFast`` so transformers 4.x and 5.x both load it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(VOCAB[:3])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]"
    )
    fast.save_pretrained(str(out))
    # transformers 5 records its own class name ("TokenizersBackend"), which transformers 4.x
    # (allowed by gpn 0.9 and the hf extra) cannot resolve; PreTrainedTokenizerFast loads the
    # same tokenizer.json with the same ids in both
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
