"""``HFImageClassifier``: a Hugging Face ``AutoModelForImageClassification`` as a glmx Module,
with accuracy, macro F1, per-class precision/recall and a confusion matrix per evaluation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from glmx._optional import require
from glmx.errors import ConfigError, DataError
from glmx.image.metrics import classification_metrics, confusion_image, confusion_matrix
from glmx.trainer.module import Module

#: Small from-config architectures (``load_pretrained=false``) that train on a CPU.
TINY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny-resnet": (
        "ResNetConfig",
        {
            "embedding_size": 32,
            "hidden_sizes": [32, 64, 128],
            "depths": [1, 1, 1],
            "layer_type": "basic",
            "downsample_in_first_stage": False,
        },
    ),
    "tiny-vit": (
        "ViTConfig",
        {
            "patch_size": 4,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
        },
    ),
    "tiny-convnext": (
        "ConvNextConfig",
        {"patch_size": 2, "hidden_sizes": [32, 64, 128], "depths": [1, 1, 1], "num_stages": 3},
    ),
}
_HEAD_PREFIXES = ("classifier.", "head.", "heads.", "fc.")


def folder_classes(root: str | os.PathLike[str], split: str = "train") -> list[str]:
    """Sorted class folder names of ``root/split`` (the loader's labels)."""
    d = Path(root) / split
    if not d.is_dir():
        raise DataError(f"cannot read the classes: {d} is not a directory (ROOT/{split}/CLASS/)")
    names = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"no class folders under {d}")
    return names


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _from_hub(fn: Any, flavour: str, **kwargs: Any) -> Any:
    """``fn(flavour, ...)`` from a local directory or the HF cache; a download only when the hub
    is not marked offline, with one clear error when that cannot happen."""
    if Path(flavour).is_dir():
        return fn(flavour, **kwargs)
    try:
        return fn(flavour, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        cached_miss = err
    where = os.environ.get("HF_HOME", "~/.cache/huggingface")
    if _offline():
        raise ConfigError(
            f"model_flavour {flavour!r} is not a local directory and not in the Hugging Face "
            f"cache ({where}); HF_HUB_OFFLINE is set, so it cannot be downloaded: copy the "
            "model directory here and pass its path, or use a tiny-* flavour with "
            "load_pretrained=false"
        ) from None
    try:
        return fn(flavour, **kwargs)
    except Exception as err:  # noqa: BLE001 - any hub failure becomes one clear line
        first = (str(err).strip().splitlines() or [""])[0]
        cache = (str(cached_miss).strip().splitlines() or [""])[0]
        detail = f"{type(err).__name__}: {first}" + (f" [cache: {cache}]" if cache != first else "")
        raise ConfigError(
            f"model_flavour {flavour!r} is not a local directory or in the Hugging Face cache "
            f"({where}) and downloading it failed (offline?): {detail}"
        ) from None


def build_hf_model(
    flavour: str,
    classes: list[str],
    load_pretrained: bool,
    image_size: int | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """The ``AutoModelForImageClassification`` of ``flavour`` with a head for ``classes``."""
    tf = require("transformers", "vision", "glmx.models.HFImageClassifier")
    labels = {
        "num_labels": len(classes),
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
    }
    extra = dict(config_overrides or {})
    if flavour in TINY_CONFIGS:
        if load_pretrained:
            raise ConfigError(
                f"model_flavour {flavour!r} is a from-config architecture; set "
                "load_pretrained=false (or name a pretrained model directory / hub id)"
            )
        cls_name, kwargs = TINY_CONFIGS[flavour]
        if cls_name == "ViTConfig" and image_size:
            kwargs = {**kwargs, "image_size": image_size}
        config = getattr(tf, cls_name)(**kwargs, **labels, **extra)
        return tf.AutoModelForImageClassification.from_config(config)
    if load_pretrained:
        return _from_hub(
            tf.AutoModelForImageClassification.from_pretrained,
            flavour,
            ignore_mismatched_sizes=True,
            **labels,
            **extra,
        )
    config = _from_hub(tf.AutoConfig.from_pretrained, flavour, **labels, **extra)
    if image_size and hasattr(config, "image_size"):
        config.image_size = image_size
    return tf.AutoModelForImageClassification.from_config(config)


class HFImageClassifier(Module):
    """Image classification with a Hugging Face model, trained by :class:`glmx.Trainer`.

    Batches are :class:`glmx.data.ImageFolderLoader` dicts (``pixel_values``, ``labels`` with
    -100 on padding rows). Logs ``train/loss``, ``train/accuracy`` and, per evaluation pass,
    ``{val,test}/loss``, ``accuracy``, ``f1_macro``, ``precision/<class>`` and
    ``recall/<class>``; the confusion matrix is written as JSON under the trainer's log
    directory (``confusion/<stage>-step<N>.json``) and as an image plus text to TensorBoard
    when a TensorBoard logger is attached.

    Args:
        model_flavour: a ``tiny-resnet``/``tiny-vit``/``tiny-convnext`` architecture, a local
            model directory, or a hub id present in the local Hugging Face cache.
        classes: class names (label order); default: the sorted folders of ``data_root/train``.
        data_root: the ImageFolder root to read the classes from.
        load_pretrained: load pretrained weights (head resized to the classes) instead of
            initializing from the config.
        freeze_backbone: train the classification head only.
        lr, weight_decay: AdamW settings.
        warmup_steps: linear warm-up, then cosine decay to 0 over the trainer's steps.
        label_smoothing: cross-entropy label smoothing.
        image_size: input size, for architectures that need it (ViT).
        config_overrides: further config fields of the architecture.
    """

    def __init__(
        self,
        model_flavour: str = "tiny-resnet",
        classes: list[str] | None = None,
        data_root: str | None = None,
        load_pretrained: bool = False,
        freeze_backbone: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        label_smoothing: float = 0.0,
        image_size: int | None = None,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if classes is None:
            if data_root is None:
                raise ConfigError("HFImageClassifier needs classes or data_root")
            classes = folder_classes(data_root)
        self.classes = [str(c) for c in classes]
        self.save_hyperparameters(ignore=["data_root"])
        self.model = build_hf_model(
            str(model_flavour), self.classes, load_pretrained, image_size, config_overrides
        )
        if freeze_backbone:
            head = [p for n, p in self.model.named_parameters() if n.startswith(_HEAD_PREFIXES)]
            if not head:
                raise ConfigError(
                    f"freeze_backbone: no classification head (classifier.*) in {model_flavour!r}"
                )
            for name, p in self.model.named_parameters():
                p.requires_grad_(name.startswith(_HEAD_PREFIXES))
        self._cm: torch.Tensor | None = None
        self.confusion: dict[str, list[list[int]]] = {}
        self._writer: Any = None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        return self.model(pixel_values=pixel_values).logits

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
        logits = self(batch["pixel_values"])
        labels = batch["labels"]
        n = int((labels != -100).sum())
        if n == 0:
            return logits.sum() * 0.0, logits, 0
        ls = self.hparams.label_smoothing if self.training else 0.0
        loss = F.cross_entropy(logits.float(), labels, ignore_index=-100, label_smoothing=ls)
        return loss, logits, n

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> Any:
        """Cross-entropy over the real rows (padding rows carry label -100)."""
        loss, logits, n = self._loss(batch)
        if n == 0:
            return None
        labels = batch["labels"]
        keep = labels != -100
        acc = (logits.argmax(-1)[keep] == labels[keep]).float().mean()
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=n)
        self.log("train/accuracy", acc, batch_size=n)
        return loss

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        loss, logits, n = self._loss(batch)
        cm = confusion_matrix(logits.argmax(-1), batch["labels"], len(self.classes))
        self._cm = cm if self._cm is None else self._cm + cm
        if n:
            self.log(f"{stage}/loss", loss.detach(), prog_bar=True, batch_size=n)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Loss and the running confusion matrix."""
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Loss and the running confusion matrix."""
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._cm = None

    def on_test_epoch_start(self) -> None:
        self._cm = None

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def _finish(self, stage: str) -> None:
        cm = self._cm if self._cm is not None else torch.zeros(len(self.classes), len(self.classes))
        cm = cm.long()
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            backend = dist.get_backend()
            t = cm.to(self.device if backend == "nccl" else "cpu")
            dist.all_reduce(t)
            cm = t.cpu()
        m = classification_metrics(cm)
        n = int(cm.sum())
        self.log(f"{stage}/accuracy", float(m["accuracy"]), prog_bar=True)
        self.log(f"{stage}/f1_macro", float(m["f1_macro"]))
        for i, name in enumerate(self.classes):
            self.log(f"{stage}/precision/{name}", float(m["precision"][i]))
            self.log(f"{stage}/recall/{name}", float(m["recall"][i]))
        self.confusion[stage] = cm.tolist()
        trainer = self._trainer
        if trainer is None or trainer.sanity_checking or not trainer.is_global_zero or n == 0:
            return
        self._write_confusion(stage, cm)

    def _write_confusion(self, stage: str, cm: torch.Tensor) -> None:
        trainer = self.trainer
        out = Path(trainer.log_dir) / "confusion"
        out.mkdir(parents=True, exist_ok=True)
        doc = {"stage": stage, "step": self.global_step, "classes": self.classes}
        doc["matrix"] = cm.tolist()
        # written whole, then renamed: the platform's agent reads these files while they appear
        target = out / f"{stage}-step{self.global_step}.json"
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(doc) + "\n")
        os.replace(tmp, target)
        tb = next((lg for lg in trainer.loggers if type(lg).__name__ == "TensorBoardLogger"), None)
        if tb is None:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the tb extra is not installed: JSON only
                return
            self._writer = SummaryWriter(log_dir=str(tb.log_dir))
        self._writer.add_image(f"{stage}/confusion_matrix", confusion_image(cm), self.global_step)
        header = "| true \\ pred | " + " | ".join(self.classes) + " |"
        rows = [header, "|" + "---|" * (len(self.classes) + 1)]
        rows += [
            f"| {c} | " + " | ".join(str(v) for v in r) + " |"
            for c, r in zip(self.classes, cm.tolist(), strict=True)
        ]
        self._writer.add_text(f"{stage}/confusion_matrix", "\n".join(rows), self.global_step)
        self._writer.flush()

    def teardown(self, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def configure_optimizers(self) -> Any:
        """AdamW on the trainable parameters; warm-up then cosine decay when the trainer knows
        its step count, else a constant rate."""
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        total = None
        if self._trainer is not None:
            total = self.trainer.estimated_stepping_batches
        if not total:
            return opt
        warm = max(0, int(hp.warmup_steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            import math

            t = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
