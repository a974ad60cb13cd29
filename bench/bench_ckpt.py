"""Checkpoint benchmark: glmx.ckpt vs torch.save/torch.load and safetensors, side by side.

Targets (docs/benchmarks.md, performance reference C1-C3), state >= 500 MB:
  C1  async save blocking time      <= 0.10x torch.save
  C2  sync save (fsync + rename)    <= 1.0x  safetensors.save_file
  C3  load incl. full read          <= 1.2x  safetensors load, and >= 5x faster than torch.load

Run: ``.venv/bin/python bench/bench_ckpt.py [--mb 512] [--repeats 3] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file as st_load
from safetensors.torch import save_file as st_save

from glmx.ckpt import CheckpointManager


def _touch(state: dict[str, torch.Tensor]) -> float:
    # "Full read": every byte is read (mmap-backed tensors fault their pages in here).
    # A reduction allocates nothing, so fresh-memory costs do not blur the comparison.
    return float(sum(t.sum().item() for t in state.values()))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512, help="state size in MB (>= 500 for the targets)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()

    torch.manual_seed(0)
    n = max(1, args.mb // 4)
    state = {f"layers.{i}.weight": torch.randn(1024, 1024) for i in range(n)}  # 4 MB each
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    root = Path(args.dir or tempfile.mkdtemp(prefix="glmx-bench-ckpt-"))
    root.mkdir(parents=True, exist_ok=True)
    torch_path, st_path = root / "state.pt", root / "state.safetensors"
    mgr_async = CheckpointManager(root / "async_run", save_total_limit=1)
    mgr_sync = CheckpointManager(root / "sync_run", save_total_limit=1, async_save=False)
    times: dict[str, list[float]] = {k: [] for k in ("torch_save", "st_save", "async_block", "async_total", "sync_save")}
    load_times: dict[str, list[float]] = {k: [] for k in ("torch_load", "st_load", "glmx_load")}
    try:
        mgr_async.save(0, state)  # warm-up: allocates the reusable host buffers once
        mgr_async.wait()
        for rep in range(args.repeats):
            times["torch_save"].append(_timed(lambda: torch.save(state, torch_path)))
            times["st_save"].append(_timed(lambda: st_save(state, str(st_path))))
            step = rep + 1
            start = time.perf_counter()
            mgr_async.save(step, state)
            times["async_block"].append(time.perf_counter() - start)
            mgr_async.wait()
            times["async_total"].append(time.perf_counter() - start)
            times["sync_save"].append(_timed(lambda: mgr_sync.save(step, state)))
            load_times["torch_load"].append(_timed(lambda: _touch(torch.load(torch_path, weights_only=True))))
            load_times["st_load"].append(_timed(lambda: _touch(st_load(str(st_path)))))
            load_times["glmx_load"].append(_timed(lambda: _touch(mgr_sync.load("last")["model"])))
        med = {k: statistics.median(v) for k, v in {**times, **load_times}.items()}
    finally:
        mgr_async.wait()
        shutil.rmtree(root, ignore_errors=True)

    print(f"state: {nbytes / 1e6:.0f} MB in {n} tensors, {args.repeats} repeats (medians), {os.cpu_count()} CPUs")
    for key, value in med.items():
        print(f"  {key:12s} {value * 1000:8.1f} ms")
    c1 = med["async_block"] / med["torch_save"]
    c2 = med["sync_save"] / med["st_save"]
    c3a = med["glmx_load"] / med["st_load"]
    c3b = med["torch_load"] / med["glmx_load"]
    print(f"C1 async blocking / torch.save        = {c1:5.3f}x  (target <= 0.10) {'PASS' if c1 <= 0.10 else 'FAIL'}")
    print(f"C2 sync save+fsync / safetensors save = {c2:5.3f}x  (target <= 1.0)  {'PASS' if c2 <= 1.0 else 'FAIL'}")
    print(f"C3 load / safetensors load            = {c3a:5.3f}x  (target <= 1.2)  {'PASS' if c3a <= 1.2 else 'FAIL'}")
    print(f"C3 torch.load / load (speed-up)       = {c3b:5.2f}x  (target >= 5)    {'PASS' if c3b >= 5 else 'FAIL'}")


if __name__ == "__main__":
    main()
