"""Models shipped with glmx."""

from glmx.models.gpn import GPN, GPNConfig, GPNModule, weighted_mlm_loss
from glmx.models.hf_image import HFImageClassifier
from glmx.models.transformer import DnaTransformer, TransformerConfig, TransformerMLM

__all__ = [
    "GPN",
    "GPNConfig",
    "GPNModule",
    "weighted_mlm_loss",
    "HFImageClassifier",
    "DnaTransformer",
    "TransformerConfig",
    "TransformerMLM",
]
