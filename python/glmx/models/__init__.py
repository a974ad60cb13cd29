"""Models shipped with glmx."""

from glmx.models.gpn import GPN, GPNConfig, GPNModule, weighted_mlm_loss

__all__ = ["GPN", "GPNConfig", "GPNModule", "weighted_mlm_loss"]
