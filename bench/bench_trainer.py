"""T1: per-step overhead of glmx.Trainer vs a raw PyTorch loop vs Lightning, side by side.

Tiny MLP on CPU, batch 32, the same pre-built batches for all three, steady state measured
between step WARMUP and step WARMUP + STEPS with a callback (so setup time is excluded).
Prints medians over REPEATS interleaved runs (the order reversed every other repeat), the best
run of each, and the median of the per-repeat glmx/raw ratios (paired: robust to slow changes
in machine load).

    .venv/bin/python bench/bench_trainer.py [--steps 2000] [--repeats 5]
    .venv/bin/python bench/bench_trainer.py --background-load 4   # N busy processes meanwhile

``--background-load N`` starts N CPU-bound processes (a busy Python loop each) before the
measurement and stops them after, as on a node where loader workers and other jobs share the
cores with training.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch

import glmx

WARMUP = 50
# main-thread CPU seconds per step of each run (the teardown after the last step included for
# the trainers: a few ms over thousands of steps)
CPU: dict[str, list[float]] = {"raw": [], "glmx": [], "lightning": []}


class Batches:
    """Pre-built batches as one iterable loader (a bare list would read as several loaders)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.items = [
            (torch.randn(32, 32, generator=g), torch.randn(32, 1, generator=g)) for _ in range(n)
        ]

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def make_batches(n: int) -> Batches:
    return Batches(n)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))


def raw_loop(batches) -> float:
    net = mlp()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    start = cpu = 0.0
    for i, (x, y) in enumerate(batches):
        if i == WARMUP:
            start, cpu = time.perf_counter(), time.thread_time()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    n = len(batches) - WARMUP
    CPU["raw"].append((time.thread_time() - cpu) / n)
    return (time.perf_counter() - start) / n


class Timer:
    """Times steps WARMUP..end from on_train_batch_end (works for glmx and Lightning)."""

    def __init__(self) -> None:
        self.start = self.end = self.cpu_start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == WARMUP:
            self.cpu_start = time.thread_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == WARMUP - 1:
            self.start = time.perf_counter()
        self.end = time.perf_counter()

    def cpu_per_step(self, n: int) -> float:
        """Main-thread CPU time per step (read once, after training)."""
        return (time.thread_time() - self.cpu_start) / n


def mlp_module(base: type, log_loss: bool = False) -> Any:
    """T1's MLP as a module of ``base`` (``glmx.Module`` or ``lightning.LightningModule``), so
    both trainers run the very same training step; ``log_loss`` adds a progress-bar metric."""

    class Net(base):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            if log_loss:
                self.log("train/loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    return Net()


def glmx_loop(batches) -> float:
    class GlmxTimer(Timer, glmx.Callback):
        pass

    timer = GlmxTimer()
    trainer = glmx.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(mlp_module(glmx.Module), batches)
    CPU["glmx"].append(timer.cpu_per_step(len(batches) - WARMUP))
    return (timer.end - timer.start) / (len(batches) - WARMUP)


def lightning_loop(batches) -> float:
    import lightning as L

    class LitTimer(Timer, L.Callback):
        pass

    timer = LitTimer()
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        callbacks=[timer],
    )
    trainer.fit(mlp_module(L.LightningModule), batches)
    CPU["lightning"].append(timer.cpu_per_step(len(batches) - WARMUP))
    return (timer.end - timer.start) / (len(batches) - WARMUP)


@contextlib.contextmanager
def background_load(n: int) -> Iterator[None]:
    """N CPU-bound processes for the duration of the block."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    try:
        time.sleep(0.5 if n else 0.0)  # let the scheduler see them busy
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-lightning", action="store_true")
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="run N CPU-bound processes during the measurement",
    )
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    batches = make_batches(args.steps + WARMUP)
    runners = {"raw": raw_loop, "glmx": glmx_loop}
    if not args.no_lightning:
        try:
            import lightning  # noqa: F401

            runners["lightning"] = lightning_loop
        except ImportError:
            print("lightning not installed: pip install lightning (bench dependency)")
    times: dict[str, list[float]] = {k: [] for k in runners}
    with background_load(args.background_load):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        order = list(runners)
        for i in range(args.repeats):
            # every other repeat runs the loops in reverse order, so a drift in machine load
            # (or a warm-cache advantage of going second) does not favour one loop
            for name in order if i % 2 == 0 else order[::-1]:
                # a collection left pending by the previous run's set-up would otherwise land
                # (hundreds of ms for a full one) in whichever loop runs next
                gc.collect()
                times[name].append(runners[name](batches))
    med = {k: statistics.median(v) for k, v in times.items()}
    # the same repeat's runs ran seconds apart: their ratio cancels slow changes in load
    paired = sorted(g / r for g, r in zip(times["glmx"], times["raw"], strict=True))
    best = {k: min(v) for k, v in times.items()}
    print(
        f"T1 per-step time, tiny MLP, CPU, batch 32, {args.steps} steps, median of {args.repeats}"
        f", background load {args.background_load} processes (loadavg {load:.1f}):"
    )
    for name, value in med.items():
        cpu = statistics.median(CPU[name]) if CPU[name] else float("nan")
        print(
            f"  {name:10s} {value * 1e3:.4f} ms/step  (best {best[name] * 1e3:.4f}; "
            f"main-thread CPU {cpu * 1e3:.4f} ms/step)"
        )
    print(
        f"  glmx overhead over raw:      {100 * (med['glmx'] / med['raw'] - 1):+.1f}% "
        f"(target <= {'+25' if args.background_load else '+10'}%); "
        f"best of each: {100 * (best['glmx'] / best['raw'] - 1):+.1f}%"
    )
    q1, q3 = (paired[0], paired[-1])
    if len(paired) > 1:
        q1, _, q3 = statistics.quantiles(paired, n=4)
    print(
        f"  glmx / raw within each repeat: median {100 * (statistics.median(paired) - 1):+.1f}% "
        f"(quartiles {100 * (q1 - 1):+.1f}% .. {100 * (q3 - 1):+.1f}%)"
    )
    if "lightning" in med:
        print(f"  lightning overhead over raw: {100 * (med['lightning'] / med['raw'] - 1):+.1f}%")
        print(f"  glmx / lightning step time:  {med['glmx'] / med['lightning']:.2f}x")


if __name__ == "__main__":
    main()
