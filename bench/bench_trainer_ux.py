"""T1-UX: bench_trainer's T1 with what a user sees switched on: the progress bar drawn as in a
terminal (redraws included; its output goes to /dev/null), the model summary and the
end-of-run summary, against the same run with all of them off, and Lightning with its bar and
model summary on (both trainers' output to /dev/null). Interleaved repeats, medians.

    .venv/bin/python bench/bench_trainer_ux.py [--steps 2000] [--repeats 5] [--no-lightning]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_trainer import WARMUP, Timer, make_batches, mlp_module  # noqa: E402

import glmx  # noqa: E402
from glmx.trainer import ProgressBar  # noqa: E402


@contextlib.contextmanager
def quiet():
    """stdout and stderr (the file descriptors too) to /dev/null."""
    with open(os.devnull, "w") as null:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def glmx_run(batches, ux: bool) -> float:
    class GlmxTimer(Timer, glmx.Callback):
        pass

    timer = GlmxTimer()
    callbacks: list = [timer]
    if ux:
        bar = ProgressBar()
        bar._tty = True  # draw as in a terminal (the output goes to /dev/null)
        callbacks.append(bar)
    trainer = glmx.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=ux,
        enable_model_summary=ux,
        enable_checkpointing=False,
        enable_job_control=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    with quiet():
        trainer.fit(mlp_module(glmx.Module, log_loss=True), batches)
    return (timer.end - timer.start) / (len(batches) - WARMUP)


def lightning_run(batches) -> float:
    import lightning as L

    class LitTimer(Timer, L.Callback):
        pass

    timer = LitTimer()
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        callbacks=[timer],
    )
    with quiet():
        trainer.fit(mlp_module(L.LightningModule, log_loss=True), batches)
    return (timer.end - timer.start) / (len(batches) - WARMUP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-lightning", action="store_true")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    batches = make_batches(args.steps + WARMUP)
    runners = {
        "glmx_off": lambda: glmx_run(batches, False),
        "glmx_ux": lambda: glmx_run(batches, True),
    }
    if not args.no_lightning:
        runners["lightning_ux"] = lambda: lightning_run(batches)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, fn in runners.items():
            times[name].append(fn())
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:13s} {v:.4f} ms/step  (runs: {', '.join(f'{x * 1000:.4f}' for x in times[k])})")
    print(f"glmx_ux / glmx_off = {med['glmx_ux'] / med['glmx_off']:.3f}")
    if "lightning_ux" in med:
        print(f"lightning_ux / glmx_ux = {med['lightning_ux'] / med['glmx_ux']:.3f}")


if __name__ == "__main__":
    main()
