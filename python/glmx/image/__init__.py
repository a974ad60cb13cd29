"""Image classification with glmx: the native ImageFolder loader (:mod:`glmx.data.image`),
Hugging Face image models (:class:`glmx.models.HFImageClassifier`), metrics, the digits data
set and the platform's run fields. See ``docs/images.md``."""

from glmx.image.digits import write_digits
from glmx.image.fields import FIELD_KEYS, config_from_fields
from glmx.image.metrics import classification_metrics, confusion_image, confusion_matrix

__all__ = [
    "FIELD_KEYS",
    "classification_metrics",
    "config_from_fields",
    "confusion_image",
    "confusion_matrix",
    "write_digits",
]
