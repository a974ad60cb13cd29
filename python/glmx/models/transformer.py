"""A transformer encoder for masked language modelling of DNA (``glmx.models.DnaTransformer``).

Pre-norm blocks ``x + Attn(Norm(x))``, ``x + MLP(Norm(x))``; rotary position embeddings (RoPE)
on queries and keys; attention through ``F.scaled_dot_product_attention`` (flash or
memory-efficient kernels on CUDA, the math kernel on CPU); SwiGLU or GELU MLP; no biases; a
final norm and a linear head, optionally tied to the embedding. Same tokens, batches and
weighted MLM loss as :class:`glmx.models.GPNModule`, so both train on the same data module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from glmx.models.gpn import MaskedLMModule, weighted_mlm_loss


@dataclass
class TransformerConfig:
    """Model size and shape; the defaults are ``configs/model/transformer_base.yaml`` (~99M)."""

    vocab_size: int = 7
    hidden_size: int = 768
    n_layers: int = 14
    n_heads: int = 12
    #: MLP width; ``None`` picks 8/3 * hidden (SwiGLU, rounded up to 64) or 4 * hidden (GELU).
    intermediate_size: int | None = 2048
    mlp: str = "swiglu"
    norm: str = "rmsnorm"
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    dropout: float = 0.0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.mlp not in ("swiglu", "gelu"):
            raise ValueError(f"mlp must be 'swiglu' or 'gelu', got {self.mlp!r}")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"norm must be 'rmsnorm' or 'layernorm', got {self.norm!r}")
        if self.hidden_size % self.n_heads or (self.hidden_size // self.n_heads) % 2:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must split into n_heads ({self.n_heads}) "
                "heads of an even size (RoPE rotates pairs)"
            )

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.hidden_size // self.n_heads

    @property
    def mlp_size(self) -> int:
        """The MLP's inner width after applying the ``None`` default."""
        if self.intermediate_size is not None:
            return self.intermediate_size
        if self.mlp == "swiglu":
            return -(-(8 * self.hidden_size // 3) // 64) * 64
        return 4 * self.hidden_size

    def num_parameters(self) -> int:
        """Parameter count computed from the sizes (equals ``sum(p.numel())`` of the model)."""
        h, inner = self.hidden_size, self.mlp_size
        attn = 4 * h * h
        mlp = (3 if self.mlp == "swiglu" else 2) * h * inner
        norm = h  # no biases: one weight vector per norm (RMSNorm or LayerNorm)
        per_layer = attn + mlp + 2 * norm
        embed = self.vocab_size * h
        head = 0 if self.tie_embeddings else self.vocab_size * h
        return self.n_layers * per_layer + embed + head + norm

    @classmethod
    def tiny(cls) -> TransformerConfig:
        """hidden 64, 4 layers, 4 heads: trains on CPU in minutes."""
        return cls(hidden_size=64, n_layers=4, n_heads=4, intermediate_size=None)


def rope_cache(
    seq_len: int, head_dim: int, theta: float, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of shape ``(seq_len, head_dim)`` for :func:`apply_rope` (fp32)."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    )
    pos = torch.arange(seq_len, dtype=torch.float32, device=device)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates ``x`` ``(..., L, head_dim)`` by position: pairs ``(i, i + d/2)`` turn by
    ``pos * theta^(-2i/d)``, so ``<rope(q, m), rope(k, n)>`` depends on ``m - n`` only."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def _norm(cfg: TransformerConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.hidden_size, eps=1e-6)
    return nn.LayerNorm(cfg.hidden_size, bias=False)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE through ``F.scaled_dot_product_attention``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = cfg.n_heads, cfg.head_dim, cfg.dropout
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, length, _ = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, length, -1))


class MLP(nn.Module):
    """SwiGLU ``down(silu(gate(x)) * up(x))`` or GELU ``down(gelu(up(x)))``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        inner = cfg.mlp_size
        self.swiglu = cfg.mlp == "swiglu"
        self.gate = nn.Linear(cfg.hidden_size, inner, bias=False) if self.swiglu else None
        self.up = nn.Linear(cfg.hidden_size, inner, bias=False)
        self.down = nn.Linear(inner, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """One pre-norm transformer block (the unit FSDP shards and activation checkpointing
    recomputes)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = _norm(cfg)
        self.attn = Attention(cfg)
        self.mlp_norm = _norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, attn_mask))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


class TransformerMLM(nn.Module):
    """The network: token ids ``(B, L)`` -> logits ``(B, L, vocab)``."""

    def __init__(self, cfg: TransformerConfig | None = None) -> None:
        super().__init__()
        self.cfg = c = cfg or TransformerConfig()
        self.embedding = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.final_norm = _norm(c)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, init_std) for Linear and Embedding (padding row zero), output projections
        scaled by ``1/sqrt(2 * n_layers)`` (GPT-2), norms 1; ties the head if asked."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=std / (2 * self.cfg.n_layers) ** 0.5)
            else:
                nn.init.normal_(p, std=std)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        if self.cfg.tie_embeddings:
            self.head.weight = self.embedding.weight

    def hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Last hidden states ``(B, L, hidden)`` after the final norm. ``attention_mask``
        ``(B, L)`` (1 = attend) hides padding keys; without it every position attends to all
        (full-length windows, as the DNA loaders produce)."""
        x = self.embedding(input_ids)
        cos, sin = rope_cache(input_ids.shape[1], self.cfg.head_dim, self.cfg.rope_theta, x.device)
        mask = None
        if attention_mask is not None:
            mask = attention_mask[:, None, None, :].to(torch.bool)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.final_norm(x)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.hidden_states(input_ids, attention_mask))


class DnaTransformer(MaskedLMModule):
    """The transformer MLM as a trainable module: weighted MLM loss, AdamW without decay on
    norms and embeddings' padding row, constant LR after warmup (as :class:`GPNModule`)."""

    def __init__(
        self,
        config: TransformerConfig | dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 1000,
        betas: tuple[float, float] = (0.9, 0.98),
    ) -> None:
        super().__init__()
        # a Mapping also covers the DictConfig a Hydra config passes
        if isinstance(config, Mapping):
            cfg = TransformerConfig(**dict(config))
        else:
            cfg = config or TransformerConfig()
        self.save_hyperparameters(ignore=["config", "cfg"])
        self.hparams["config"] = asdict(cfg)
        self.model = TransformerMLM(cfg)

    def fsdp_blocks(self) -> list[nn.Module]:
        """The modules FSDP shards one by one (and activation checkpointing recomputes)."""
        return list(self.model.blocks)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.model(input_ids, attention_mask)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch["input_ids"], batch.get("attention_mask"))
        return weighted_mlm_loss(logits, batch["labels"], batch["loss_weight"])


__all__ = [
    "Attention",
    "Block",
    "DnaTransformer",
    "MLP",
    "TransformerConfig",
    "TransformerMLM",
    "apply_rope",
    "rope_cache",
]
