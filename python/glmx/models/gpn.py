"""GPN: the ByteNet-style dilated CNN for masked language modelling of DNA (GPN-Animal-Promoter).

Architecture as in the released model: embedding (7 tokens, padding row 0), ``n_layers``
residual "slim" blocks ``x + Lin(GELU(LN(Conv(GELU(LN(Lin(GELU(LN(x)))))))))`` with kernel 9 in
layer 0 and 5 elsewhere, dilation ``2 ** (i % dilation_cycle)``, no biases, a final LayerNorm and
an untied linear head to the 7 token logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from glmx.trainer.module import Module
from glmx.trainer.optim import constant_with_warmup, param_groups_no_decay

VOCAB = ["[PAD]", "[MASK]", "[UNK]", "a", "c", "g", "t"]


@dataclass
class GPNConfig:
    """Model size; the defaults are the released 152M-parameter model."""

    vocab_size: int = 7
    hidden_size: int = 1024
    n_layers: int = 64
    first_kernel_size: int = 9
    rest_kernel_size: int = 5
    dilation_cycle: int = 8
    slim: bool = True
    bias: bool = False
    init_std: float = 0.02

    @classmethod
    def tiny(cls) -> GPNConfig:
        """hidden 128, 8 layers: trains on CPU in minutes."""
        return cls(hidden_size=128, n_layers=8)


class _Block(nn.Module):
    def __init__(self, cfg: GPNConfig, kernel: int, dilation: int) -> None:
        super().__init__()
        hidden = cfg.hidden_size
        inner = hidden // 2 if cfg.slim else hidden
        self.norm_in = nn.LayerNorm(hidden, bias=cfg.bias)
        self.lin_in = nn.Linear(hidden, inner, bias=cfg.bias)
        self.norm_conv = nn.LayerNorm(inner, bias=cfg.bias)
        self.conv = nn.Conv1d(
            inner, inner, kernel, dilation=dilation, padding="same", bias=cfg.bias
        )
        self.norm_out = nn.LayerNorm(inner, bias=cfg.bias)
        self.lin_out = nn.Linear(inner, hidden, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin_in(F.gelu(self.norm_in(x)))
        h = F.gelu(self.norm_conv(h))
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        h = self.lin_out(F.gelu(self.norm_out(h)))
        return x + h


class GPN(nn.Module):
    """The network: token ids ``(B, L)`` -> logits ``(B, L, 7)`` (and optionally hidden states)."""

    def __init__(self, cfg: GPNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or GPNConfig()
        c = self.cfg
        self.embedding = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.layers = nn.ModuleList(
            _Block(
                c,
                c.first_kernel_size if i == 0 else c.rest_kernel_size,
                2 ** (i % c.dilation_cycle),
            )
            for i in range(c.n_layers)
        )
        self.final_norm = nn.LayerNorm(c.hidden_size, bias=c.bias)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, bias=c.bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, init_std) for Linear and Embedding (padding row zero), LayerNorm weight 1;
        Conv1d keeps torch's default initialisation, as in the reference."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.cfg.init_std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Last hidden states ``(B, L, hidden)`` after the final LayerNorm."""
        x = self.embedding(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.final_norm(x)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden_states(input_ids))


def weighted_mlm_loss(
    logits: torch.Tensor, labels: torch.Tensor, loss_weight: torch.Tensor
) -> torch.Tensor:
    """``sum(w * CE) / sum(w)`` over masked positions (labels != -100)."""
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        reduction="none",
        ignore_index=-100,
    )
    w = loss_weight.reshape(-1).float() * (labels.reshape(-1) != -100)
    return (ce * w).sum() / w.sum().clamp_min(1e-12)


class MaskedLMModule(Module):
    """What the DNA masked-LM modules share: ``train/val/test`` loss logging around the
    subclass's ``_loss(batch)`` and AdamW (no decay on norms and biases) with linear warmup to a
    constant LR, from the ``lr``, ``weight_decay``, ``warmup_steps`` and ``betas`` hparams."""

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("test/loss", self._loss(batch))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = param_groups_no_decay(self.model, hp.weight_decay)
        opt = torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas), eps=1e-8)
        sched = constant_with_warmup(opt, hp.warmup_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class GPNModule(MaskedLMModule):
    """GPN as a trainable module: weighted MLM loss, AdamW without decay on norms, warmup."""

    def __init__(
        self,
        config: GPNConfig | dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 1000,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        super().__init__()
        # a Mapping also covers the DictConfig a Hydra config passes
        cfg = GPNConfig(**dict(config)) if isinstance(config, Mapping) else (config or GPNConfig())
        self.save_hyperparameters(ignore=["config", "cfg"])
        self.hparams["config"] = asdict(cfg)
        self.model = GPN(cfg)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return weighted_mlm_loss(self(batch["input_ids"]), batch["labels"], batch["loss_weight"])


# Hugging Face layout of the released GPN models (GPNForMaskedLM, embedding="embedding",
# encoder="bytenet", mlm_head_transform=False): each ByteNet layer is one nn.Sequential whose
# parametrised children are at indices 0 (LN), 2 (Linear in), 3 (LN), 6 (Conv1d), 8 (LN),
# 10 (Linear out).
_HF_LAYER = {
    "0": "norm_in",
    "2": "lin_in",
    "3": "norm_conv",
    "6": "conv",
    "8": "norm_out",
    "10": "lin_out",
}
_HF_TOP = {
    "model.embeddings.word_embeddings.": "embedding.",
    "model.ln_f.": "final_norm.",
    "cls.decoder.": "head.",
}


def from_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames a Hugging Face GPN state dict (``model.encoder.layer.3.layer.6.weight`` ...) to
    :class:`GPN`'s names (``layers.3.conv.weight`` ...).

    Raises:
        ValueError: naming a key that has no counterpart (e.g. an MLM head transform).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = None
        for prefix, repl in _HF_TOP.items():
            if key.startswith(prefix):
                new = repl + key[len(prefix) :]
        parts = key.split(".")
        if new is None and parts[:3] == ["model", "encoder", "layer"] and len(parts) == 7:
            sub = _HF_LAYER.get(parts[5])
            if sub is not None and parts[4] == "layer":
                new = f"layers.{parts[3]}.{sub}.{parts[6]}"
        if new is None:
            raise ValueError(f"Hugging Face key {key!r} has no GPN counterpart")
        out[new] = value
    return out


def to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`from_hf_state_dict`."""
    top = {v: k for k, v in _HF_TOP.items()}
    layer = {v: k for k, v in _HF_LAYER.items()}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "layers":
            out[f"model.encoder.layer.{parts[1]}.layer.{layer[parts[2]]}.{parts[3]}"] = value
        else:
            prefix = parts[0] + "."
            out[top[prefix] + key[len(prefix) :]] = value
    return out


def config_from_state_dict(state: dict[str, torch.Tensor], dilation_cycle: int = 8) -> GPNConfig:
    """The :class:`GPNConfig` that weights in GPN's naming were made with (sizes, kernels,
    slim, bias). The dilation cycle is not visible in weights: pass it if it is not 8.

    Raises:
        ValueError: when the keys are not those of a GPN.
    """
    try:
        vocab, hidden = state["embedding.weight"].shape
        inner = state["layers.0.lin_in.weight"].shape[0]
        first_k = state["layers.0.conv.weight"].shape[-1]
    except KeyError as err:
        raise ValueError(f"not GPN weights: missing {err}") from None
    n_layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    rest_k = state["layers.1.conv.weight"].shape[-1] if n_layers > 1 else 5
    return GPNConfig(
        vocab_size=int(vocab),
        hidden_size=int(hidden),
        n_layers=n_layers,
        first_kernel_size=int(first_k),
        rest_kernel_size=int(rest_k),
        dilation_cycle=dilation_cycle,
        slim=inner * 2 == hidden,
        bias="head.bias" in state,
    )
