"""Models shipped with glmx."""

from glmx.models.gpn import GPN, GPNConfig, GPNModule, weighted_mlm_loss
from glmx.models.transformer import DnaTransformer, TransformerConfig, TransformerMLM

__all__ = [
    "GPN",
    "GPNConfig",
    "GPNModule",
    "weighted_mlm_loss",
    "DnaTransformer",
    "TransformerConfig",
    "TransformerMLM",
]
