"""`NonfiniteWatch`: stops a run at a NaN or inf training loss, naming the step.

On CPU each loss is checked as it comes: reading a CPU scalar costs nothing. On an accelerator,
reading the loss every step makes the host wait for the device at every step, so it can no
longer queue the next step's kernels ahead (Lightning and torchtitan avoid per-step reads for
that reason). There the losses stay on the device and are checked together every
``check_every`` steps, at each log step, before a checkpoint is written and when fit ends: the
error still names the first bad step, and no checkpoint holds weights trained past it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from glmx.errors import TrainError


class _Held(NamedTuple):
    step: int
    epoch: int
    batch: int
    loss: torch.Tensor


class NonfiniteWatch:
    """Collects training losses (``add``) and raises :class:`TrainError` at the first one that
    is NaN or inf (at once on CPU, at the next ``check`` on an accelerator)."""

    def __init__(self, check_every: int = 50, immediate: bool | None = None) -> None:
        self.check_every = check_every
        self.immediate = immediate  # None: at once on CPU, deferred elsewhere
        self._held: list[_Held] = []
        # Once found, the error is raised again at every later add/check: a caller that
        # catches it (a `glmx control save` reports errors and lets training go on) must not
        # make the run forget it.
        self._error: TrainError | None = None

    def add(self, loss: torch.Tensor, step: int, epoch: int, batch: int) -> None:
        """One step's detached scalar loss, at optimizer step ``step`` of ``epoch``/``batch``."""
        if self._error is not None:
            raise self._error
        immediate = self.immediate
        if immediate is None:
            immediate = loss.device.type == "cpu"
        if immediate:
            value = float(loss)
            if not math.isfinite(value):
                self._error = _error(value, step, epoch, batch)
                raise self._error
            return
        self._held.append(_Held(step, epoch, batch, loss))
        if len(self._held) >= self.check_every:
            self.check()

    def check(self) -> None:
        """Read the losses held on the device (one transfer) and raise at the first bad one."""
        if self._error is not None:
            raise self._error
        held, self._held = self._held, []
        if not held:
            return
        values = torch.stack([h.loss.float().reshape(()) for h in held])
        finite = torch.isfinite(values)
        if bool(finite.all()):
            return
        first = int((~finite).nonzero()[0])
        h = held[first]
        self._error = _error(float(values[first]), h.step, h.epoch, h.batch)
        raise self._error

    def clear(self) -> None:
        """Forget held losses and a found error (a new fit)."""
        self._held, self._error = [], None


def _error(value: float, step: int, epoch: int, batch: int) -> TrainError:
    shown = "NaN" if math.isnan(value) else str(value)
    return TrainError(
        f"loss is {shown} at global step {step} (epoch {epoch}, batch {batch}); lower the "
        "learning rate, enable gradient clipping, or pass detect_nonfinite_loss=False to "
        "continue anyway"
    )
