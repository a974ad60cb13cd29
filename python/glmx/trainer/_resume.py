"""Where a fit stands, as a checkpoint holds it, and how a resumed fit gets back there exactly.

:func:`loop_state` is `FitLoop.state_dict`: the counters, the position in the epoch, how much of
the last batch's work was done, and the RNG and sampler states of that moment and of the
epoch's start. :class:`ResumePoint` is what a resumed fit does with it when its first epoch
starts: redraw the epoch's order from the generators as they were when the epoch began, replay
to the saved position, restore the RNGs of the saved moment, and finish what was pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glmx.ckpt._rng import rng_state, set_rng_state
from glmx.trainer._data_state import loader_generators, set_generators

if TYPE_CHECKING:
    from glmx.trainer.fit_loop import FitLoop

# How much of the last batch's work is done: "batch" (its `on_train_batch_end` hooks ran; a due
# validation and the epoch end are still to come), "validation" (only the epoch end may be
# left), "epoch" (nothing is left).
PHASES = ("batch", "validation", "epoch")


def loop_state(loop: FitLoop) -> dict[str, Any]:
    """The loop's part of a checkpoint: counters, position, RNG and sampler states."""
    epoch, batch_idx = loop.position()
    state: dict[str, Any] = {
        "trainer": {
            "global_step": loop.global_step,
            "epoch": epoch,
            "batch_idx": batch_idx,
            "done_through": loop.done_through if batch_idx > 0 else "epoch",
            "total_batch_idx": loop.total_batch_idx,
        },
        "rng": rng_state(),
        "epoch_rng": loop.epoch_start.get("rng") or rng_state(),
    }
    if batch_idx > 0:
        generators = loop.epoch_start.get("generators") or []
    else:
        generators = [g.get_state() for g in loader_generators(loop.train_loader)]
    if generators:
        state["loader_rng"] = {"generators": generators}
    if loop.scaler is not None:
        state["scaler"] = loop.scaler.state_dict()
    return state


@dataclass
class ResumePoint:
    """A checkpoint's position, applied when the resumed fit's first epoch starts."""

    batch_idx: int
    done_through: str
    loader_restored: bool  # the loader restored its own position (no replay needed)
    rng: Any
    epoch_rng: Any
    generators: list[Any] | None

    @classmethod
    def from_checkpoint(cls, loop: FitLoop, comps: dict[str, Any], loader_restored: bool):
        """Sets the loop's counters from ``comps`` and returns the rest for the epoch start."""
        state = comps["trainer"]
        loop.global_step = int(state["global_step"])
        loop.epoch = loop.current_epoch = int(state["epoch"])
        batch_idx = int(state["batch_idx"])
        # the count `val_check_interval` follows when `check_val_every_n_epoch` is None
        total = state.get("total_batch_idx")
        if total is None and loop.max_batches is not None:
            total = loop.epoch * loop.max_batches + batch_idx
        loop.total_batch_idx = int(total or 0)
        # checkpoints written before this field existed finished their batch's work
        done_through = state.get("done_through", "validation")
        if "scaler" in comps and loop.scaler is not None:
            loop.scaler.load_state_dict(comps["scaler"])
        return cls(
            batch_idx=batch_idx,
            done_through=done_through if done_through in PHASES else "validation",
            loader_restored=loader_restored,
            rng=comps.get("rng"),
            epoch_rng=comps.get("epoch_rng"),
            generators=(comps.get("loader_rng") or {}).get("generators"),
        )

    def rewind(self, loader: Any) -> int:
        """Before the epoch's iterator is made: the RNG and generator states it must draw from.
        Returns how many batches to replay to reach the saved position."""
        if self.batch_idx > 0:
            # mid-epoch: the states as they were when the epoch began
            if self.epoch_rng is not None:
                set_rng_state(self.epoch_rng)
            set_generators(loader, self.generators)
            return 0 if self.loader_restored else self.batch_idx
        # at an epoch boundary the states saved are the ones the next epoch draws from
        if self.rng is not None:
            set_rng_state(self.rng)
        set_generators(loader, self.generators)
        return 0

    def arrive(self, loop: FitLoop) -> None:
        """After the replay: the loop stands where the checkpoint was taken."""
        loop.batch_idx = self.batch_idx
        if self.batch_idx > 0 and self.rng is not None:
            set_rng_state(self.rng)
        loop.done_through = self.done_through
        if loop.global_step > 0:
            # The steps before the checkpoint count: an epoch scheduler stepped by a pending
            # epoch end must not warn that no optimizer step preceded it (torch's LRScheduler
            # reads this flag of the optimizer).
            for opt in loop.trainer.optimizers:
                opt._opt_called = True  # type: ignore[attr-defined]
        loop.epoch_exhausted = loop.max_batches is not None and (loop.batch_idx >= loop.max_batches)
