"""The exception hierarchy of glmx.

Every error glmx raises derives from :class:`GlmxError`; the classes are defined in the native
module so Rust code raises them directly. A Python exception raised by user code (a callback, a
``training_step``) is never wrapped: it reaches the caller unchanged.
"""

from glmx._glmx import (
    CheckpointError,
    ConfigCompositionError,
    ConfigError,
    DataError,
    GlmxError,
    OverrideError,
    TrainError,
)

__all__ = [
    "GlmxError",
    "ConfigError",
    "ConfigCompositionError",
    "OverrideError",
    "DataError",
    "CheckpointError",
    "TrainError",
]
