"""``JobControl``: makes a training visible to ``glmx control`` and obeys its commands.

Rank 0 registers the job in the per-user control directory (:mod:`glmx.control`), publishes
its status at step boundaries and reads command files. When a process group is initialized the
command is broadcast from rank 0, so every rank acts on it at the same optimizer step (saving
a checkpoint is collective). Commands act only where an optimizer step has just completed,
never in the middle of gradient accumulation.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from glmx import control
from glmx.control._entry import JobEntry
from glmx.trainer.callbacks import Callback

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer

__all__ = ["JobControl"]

log = logging.getLogger("glmx.control")

# command codes broadcast as one int64 (0: nothing to do)
_CODES = {name: i + 1 for i, name in enumerate(control.COMMANDS)}
_NAMES = {code: name for name, code in _CODES.items()}


class JobControl(Callback):
    """Registers the running fit for ``glmx control`` (list, status, save, stop, save-stop, abort).

    Args:
        status_interval_s: minimum seconds between two status writes (the last step of a fit is
            always written).
        keep_entry: keep the registry entry after the fit ends (``glmx control cleanup``
            removes it); otherwise it is removed when the fit finishes normally.
    """

    def __init__(
        self,
        status_interval_s: float = 0.5,
        keep_entry: bool = True,
        check_every_n_steps: int | None = None,
    ) -> None:
        self.status_interval_s = status_interval_s
        # Every rank must look at the same steps (rank 0 broadcasts what it found); under DDP
        # that broadcast is a device sync, so it is done every few steps, not every step.
        self.check_every_n_steps = check_every_n_steps
        self.keep_entry = keep_entry
        self.job_id: str | None = None
        self.path: Path | None = None
        self._entry: JobEntry | None = None
        self._last_step = -1
        self._last_write = 0.0
        self._t0 = 0.0
        self._step0 = 0
        self._tokens = 0
        self._rate_t = 0.0
        self._rate_tokens = 0
        self._tokens_per_sec: float | None = None
        self._state = "starting"
        self._checkpoint: str | None = None
        self._pending: dict[str, str] = {}
        self._last_poll = 0.0

    # -- registration -------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: Module) -> None:
        self._t0 = self._rate_t = time.monotonic()
        self._step0 = self._last_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        host = socket.gethostname().split(".")[0]
        self.job_id = f"{host}-{os.getpid()}"
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "cwd": os.getcwd(),
            "argv": sys.argv,
            "run_dir": str(Path(trainer.default_root_dir).resolve()),
            "log_dir": str(Path(trainer.log_dir).resolve()),
            "world_size": trainer.world_size,
            "started": time.time(),
        }
        if self._entry is not None:
            self._entry.close()
        try:
            self._entry = JobEntry(self.job_id, info)
        except (control.ControlError, OSError) as err:
            # An unusable control directory (e.g. planted by another user) must not stop the
            # training; it only makes it uncontrollable.
            self._entry = None
            log.warning("job control is off for this fit: %s", err)
            return
        self.path = self._entry.path
        self._state = "running"
        self._write_status(trainer, force=True)

    def on_exception(self, trainer: Trainer, pl_module: Module, exception: BaseException) -> None:
        if self.path is None:
            return
        self._state = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self._write_status(trainer, force=True)
        if self._entry is not None:
            self._entry.close()
            self._entry = None

    def on_fit_end(self, trainer: Trainer, pl_module: Module) -> None:
        if self.path is None:
            return
        if self._state == "running":
            self._state = "finished"
        self._write_status(trainer, force=True)
        if self._entry is not None:
            self._entry.close(remove=not self.keep_entry)
            self._entry = None

    # -- status -------------------------------------------------------------------------------
    def _eta_s(self, trainer: Trainer) -> float | None:
        total = trainer.max_steps
        batches = trainer.num_training_batches
        if total is None and batches and trainer.max_epochs is not None:
            total = (batches * trainer.max_epochs) // max(1, trainer.accumulate_grad_batches)
        done = trainer.global_step - self._step0
        elapsed = time.monotonic() - self._t0
        if not total or done <= 0 or elapsed <= 0:
            return None
        return max(0.0, (total - trainer.global_step) * elapsed / done)

    def _write_status(self, trainer: Trainer, force: bool = False) -> None:
        now = time.monotonic()
        if self._entry is None or (not force and now - self._last_write < self.status_interval_s):
            return
        if now > self._rate_t and self._tokens > self._rate_tokens:
            self._tokens_per_sec = (self._tokens - self._rate_tokens) / (now - self._rate_t)
            self._rate_t, self._rate_tokens = now, self._tokens
        metrics = trainer.progress_bar_metrics
        loss = metrics.get("loss", metrics.get("train/loss"))
        status = {
            "state": self._state,
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "max_steps": trainer.max_steps,
            "max_epochs": trainer.max_epochs,
            "loss": loss,
            "tokens_per_sec": self._tokens_per_sec,
            "tokens_seen": self._tokens,
            "elapsed_s": now - self._t0,
            "eta_s": self._eta_s(trainer),
            "last_checkpoint": self._checkpoint,
            "updated": time.time(),
        }
        self._entry.write_status(status)
        self._last_write = now

    # -- commands -----------------------------------------------------------------------------
    def _next_command(self) -> int:
        """Rank 0: the oldest queued command's code (its file is consumed), 0 when none.
        Unknown commands and malformed files are skipped with a warning (see JobEntry)."""
        if self._entry is None:
            return 0
        while (found := self._entry.next_command()) is not None:
            command, request = found
            code = _CODES.get(command, 0)
            if code:
                self._pending[str(code)] = request
                return code
            self._entry.write_result(
                request,
                {"command": command, "ok": False, "error": f"unknown command '{command}'"},
            )
        return 0

    def _agree(self, trainer: Trainer, code: int) -> int:
        if not (dist.is_available() and dist.is_initialized() and trainer.world_size > 1):
            return code
        device = trainer.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([code], dtype=torch.int64, device=device)
        dist.broadcast(t, src=0)
        return int(t.item())

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: Module, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
            self._tokens += int(batch["input_ids"].numel()) * max(1, trainer.world_size)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self._last_step:
            return  # mid accumulation: no optimizer step yet
        self._last_step = trainer.global_step
        if trainer.world_size == 1 and self.check_every_n_steps is None:
            # One process: look for commands at most every 0.1 s (a directory listing per
            # step would cost more than the rest of glmx's per-step overhead together).
            now = time.monotonic()
            if now - self._last_poll < 0.1:
                self._write_status(trainer)
                return
            self._last_poll = now
        else:
            every = self.check_every_n_steps or 20
            if trainer.global_step % every:
                self._write_status(trainer)
                return
        code = self._agree(trainer, self._next_command() if trainer.is_global_zero else 0)
        if code:
            self._execute(trainer, _NAMES[code], batch_idx)
        self._write_status(trainer, force=bool(code))

    def _execute(self, trainer: Trainer, command: str, batch_idx: int) -> None:
        result: dict[str, Any] = {"command": command, "step": trainer.global_step, "ok": True}
        try:
            if command in ("save", "stop", "save-stop"):
                self._checkpoint = str(_save_now(trainer, batch_idx))
                result["checkpoint"] = self._checkpoint
            if command in ("stop", "save-stop"):
                trainer.should_stop = True
                self._state = "stopped"
            elif command == "abort":
                _suppress_final_save(trainer)
                trainer.should_stop = True
                self._state = "aborted"
        except Exception as err:  # reported to the sender; training goes on
            result.update(ok=False, error=f"{type(err).__name__}: {err}")
        request = self._pending.pop(str(_CODES[command]), None)
        if self._entry is not None and request is not None:
            result["finished"] = time.time()
            self._entry.write_result(request, result)


def _save_now(trainer: Trainer, batch_idx: int) -> Path:
    """Checkpoint at this step boundary through the fit's ModelCheckpoint (so retention and
    resume position match a scheduled save: resume continues after ``batch_idx``)."""
    from glmx.trainer.checkpointing import ModelCheckpoint, save

    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.manager is not None:
            if cb.last_saved_step == trainer.global_step and cb.last_model_path:
                return Path(cb.last_model_path)
            path = save(trainer, cb.manager, batch_idx + 1)
            cb.manager.wait()
            cb.last_saved_step, cb.last_model_path = trainer.global_step, str(path)
            return path
    return trainer.save_checkpoint()


def _suppress_final_save(trainer: Trainer) -> None:
    # ModelCheckpoint skips a save at the step it last saved; marking the current step as saved
    # keeps an aborted run from writing an end-of-epoch checkpoint on its way out.
    from glmx.trainer.checkpointing import ModelCheckpoint

    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint):
            cb.last_saved_step = trainer.global_step
