"""The exception hierarchy of glmx.

Every error glmx raises derives from :class:`GlmxError`; the classes are defined once in the
native module ``glmx._config`` so Rust code in either extension raises them directly. A Python
exception raised by user code (a callback, a ``training_step``, a resolver) is never wrapped: it
reaches the caller unchanged.
"""

from glmx._config import (
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
