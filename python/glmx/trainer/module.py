"""`Module` and `DataModule`: the classes users subclass, with Lightning 2.x semantics.

A LightningModule ports by changing its base class to :class:`glmx.Module`: the step methods,
``configure_optimizers`` forms, ``self.log`` and the ``on_*`` hooks behave the same way.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from glmx.trainer.trainer import Trainer


class _HParams(dict):
    """Hyperparameters saved by :meth:`Module.save_hyperparameters` (dict with attribute access)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class Module(torch.nn.Module):
    """Base class of a model trained by :class:`glmx.Trainer` (Lightning's ``LightningModule``).

    Override ``training_step`` (return a loss tensor, a dict with ``"loss"``, or ``None`` to skip
    the batch) and ``configure_optimizers``; optionally ``validation_step``, ``test_step``,
    ``predict_step`` and any ``on_*`` hook. Call ``self.log(name, value)`` to record metrics.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trainer: Trainer | None = None
        self.hparams = _HParams()

    # -- context ---------------------------------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        """The trainer running this module (raises if it is not attached to one)."""
        if self._trainer is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a glmx.Trainer")
        return self._trainer

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        self._trainer = trainer

    @property
    def current_epoch(self) -> int:
        """Current epoch (0-based); 0 when not training."""
        return self._trainer.current_epoch if self._trainer is not None else 0

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far."""
        return self._trainer.global_step if self._trainer is not None else 0

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (CPU for a module without parameters)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def global_rank(self) -> int:
        """Rank of this process in distributed training (0 otherwise)."""
        return self._trainer.global_rank if self._trainer is not None else 0

    def save_hyperparameters(self, *names: str, ignore: list[str] | str | None = None) -> None:
        """Store the caller's ``__init__`` arguments in ``self.hparams``."""
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is None:
            return
        ignored = {ignore} if isinstance(ignore, str) else set(ignore or ())
        ignored |= {"self", "__class__"}
        values = {k: v for k, v in caller.f_locals.items() if k not in ignored}
        if names:
            values = {k: values[k] for k in names if k in values}
        values = {k: v for k, v in values.items() if not k.startswith("_")}
        self.hparams.update(values)

    # -- logging ---------------------------------------------------------------------------
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool = True,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str = "mean",
        sync_dist: bool = False,
        batch_size: int | None = None,
        **_ignored: Any,
    ) -> None:
        """Record a metric. Defaults follow Lightning: in ``training_step`` ``on_step=True,
        on_epoch=False``; in validation/test steps and epoch hooks ``on_step=False,
        on_epoch=True``. Epoch values are the mean weighted by ``batch_size``."""
        if self._trainer is None:
            return
        self._trainer._metrics.log(
            name,
            value,
            prog_bar=prog_bar,
            logger=logger,
            on_step=on_step,
            on_epoch=on_epoch,
            reduce_fx=reduce_fx,
            sync_dist=sync_dist,
            batch_size=batch_size,
        )

    def log_dict(self, dictionary: dict[str, Any], **kwargs: Any) -> None:
        """``self.log`` for every item of ``dictionary``."""
        for name, value in dictionary.items():
            self.log(name, value, **kwargs)

    # -- what users override ---------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        """Compute and return the training loss for one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        """Compute validation metrics for one batch (log them with ``self.log``)."""
        return None

    def test_step(self, batch: Any, batch_idx: int) -> Any:
        """Compute test metrics for one batch."""
        return None

    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        """Return predictions for one batch (default: ``self(batch)``)."""
        return self(batch)

    def configure_optimizers(self) -> Any:
        """Return an optimizer, a list of them, ``(optimizers, schedulers)`` or a dict with
        ``"optimizer"`` and ``"lr_scheduler"``."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure_optimizers")

    def configure_callbacks(self) -> list[Any]:
        """Callbacks the module adds to the trainer's."""
        return []

    def setup(self, stage: str) -> None:
        """Called at the start of fit/validate/test/predict with that stage name."""

    def teardown(self, stage: str) -> None:
        """Called at the end of fit/validate/test/predict."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add entries to a checkpoint being saved."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read entries from a checkpoint being restored."""


_HOOKS = [
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_start",
    "on_test_end",
    "on_test_epoch_start",
    "on_test_epoch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_start",
    "on_predict_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_exception",
]


def _noop(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


for _hook in _HOOKS:
    setattr(Module, _hook, _noop)


class DataModule:
    """Base class bundling data preparation and loaders (Lightning's ``LightningDataModule``)."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None

    def prepare_data(self) -> None:
        """Download or prepare data once per node (rank 0)."""

    def setup(self, stage: str) -> None:
        """Build datasets for ``stage`` ("fit", "validate", "test", "predict")."""

    def teardown(self, stage: str) -> None:
        """Release resources after ``stage``."""

    def train_dataloader(self) -> Any:
        """Return the training loader (any iterable of batches)."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_dataloader")

    def val_dataloader(self) -> Any:
        """Return the validation loader, or ``None``."""
        return None

    def test_dataloader(self) -> Any:
        """Return the test loader, or ``None``."""
        return None

    def predict_dataloader(self) -> Any:
        """Return the prediction loader, or ``None``."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
