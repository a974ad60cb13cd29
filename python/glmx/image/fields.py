"""The platform's image classification run fields -> ``python -m glmx.train`` overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glmx.errors import ConfigError

#: Platform run field -> config key (see docs/images.md).
FIELD_KEYS: dict[str, str] = {
    "root": "data.root",
    "model_flavour": "model.model_flavour",
    "batch_size": "data.batch_size",
    "epochs": "trainer.max_epochs",
    "lr": "model.lr",
    "load_pretrained": "model.load_pretrained",
    "freeze_backbone": "model.freeze_backbone",
    "monitor_metric": "callbacks.model_checkpoint.monitor",
    "monitor_mode": "callbacks.model_checkpoint.mode",
    "tb_root": "logger.tensorboard.save_dir",
    "ckpt_dir": "callbacks.model_checkpoint.dirpath",
}
_METRICS = ("loss", "accuracy", "f1_macro")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _monitor(value: Any) -> str:
    name = str(value).strip()
    for prefix in ("val/", "val_", "valid_", "validation_", "val-"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    name = {"acc": "accuracy", "f1": "f1_macro", "macro_f1": "f1_macro"}.get(name, name)
    if name not in _METRICS:
        raise ConfigError(
            f"monitor_metric {value!r} is not a validation metric; use one of "
            f"{', '.join('val/' + m for m in _METRICS)}"
        )
    return "val/" + name


def config_from_fields(fields: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for ``python -m glmx.train`` from the platform's run fields.

    The result starts with ``data=imagefolder model=hf_image`` and sets one key per given
    field (table in docs/images.md); ``monitor_metric`` also sets ``optimized_metric``, and
    the early-stopping callback watches the same metric. Unset fields keep the config defaults.

    Raises:
        ConfigError: naming the field, for an unknown field or a value of the wrong type.
    """
    unknown = sorted(set(fields) - set(FIELD_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown image run field(s) {unknown}; known fields: {', '.join(FIELD_KEYS)}"
        )
    out = ["data=imagefolder", "model=hf_image"]

    def bad(field: str, want: str) -> ConfigError:
        return ConfigError(f"run field '{field}' must be {want}, got {fields[field]!r}")

    for field, value in fields.items():
        key = FIELD_KEYS[field]
        if value is None:
            continue
        if field in ("batch_size", "epochs"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(field, "an integer >= 1")
            text = str(value)
        elif field == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise bad(field, "a number > 0")
            text = repr(float(value))
        elif field in ("load_pretrained", "freeze_backbone"):
            if not isinstance(value, bool):
                raise bad(field, "true or false")
            text = "true" if value else "false"
        elif field == "monitor_mode":
            if value not in ("min", "max"):
                raise bad(field, "'min' or 'max'")
            text = value
        elif field == "monitor_metric":
            text = _monitor(value)
            out.append(f"optimized_metric={_quote(text)}")
            out.append(f"callbacks.early_stopping.monitor={_quote(text)}")
        else:
            if not isinstance(value, str) or not value:
                raise bad(field, "a non-empty string")
            text = _quote(value)
        out.append(f"{key}={text}")
    mode = fields.get("monitor_mode")
    if mode is not None:
        out.append(f"callbacks.early_stopping.mode={mode}")
    return out
