"""GPN: the ByteNet-style dilated CNN for masked language modelling of DNA (GPN-Animal-Promoter).

Architecture as in the released model: embedding (7 tokens, padding row 0), ``n_layers``
residual "slim" blocks ``x + Lin(GELU(LN(Conv(GELU(LN(Lin(GELU(LN(x)))))))))`` with kernel 9 in
layer 0 and 5 elsewhere, dilation ``2 ** (i % dilation_cycle)``, no biases, a final LayerNorm and
an untied linear head to the 7 token logits.
"""

from __future__ import annotations

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
        self.conv = nn.Conv1d(inner, inner, kernel, dilation=dilation, padding="same", bias=cfg.bias)
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
            _Block(c, c.first_kernel_size if i == 0 else c.rest_kernel_size, 2 ** (i % c.dilation_cycle))
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


def weighted_mlm_loss(logits: torch.Tensor, labels: torch.Tensor, loss_weight: torch.Tensor) -> torch.Tensor:
    """``sum(w * CE) / sum(w)`` over masked positions (labels != -100)."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="none", ignore_index=-100)
    w = loss_weight.reshape(-1).float() * (labels.reshape(-1) != -100)
    return (ce * w).sum() / w.sum().clamp_min(1e-12)


class GPNModule(Module):
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
        cfg = GPNConfig(**config) if isinstance(config, dict) else (config or GPNConfig())
        self.save_hyperparameters(ignore=["config"])
        self.hparams["config"] = asdict(cfg)
        self.model = GPN(cfg)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return weighted_mlm_loss(self(batch["input_ids"]), batch["labels"], batch["loss_weight"])

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
