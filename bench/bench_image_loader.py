"""Image loading throughput: glmx's native ImageFolderLoader vs torchvision ImageFolder +
DataLoader(num_workers=2), same folder of real JPEGs, same transforms, side by side.

    python bench/bench_image_loader.py                  # 3000 JPEGs, 224x224, 3 repeats
    python bench/bench_image_loader.py --files 1000 --repeats 1 --mode eval

The folder holds 224x224 crops (quality 90) of scikit-learn's two real sample photos, 10
classes. Transforms: ``train``: RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor +
Normalize; ``eval``: Resize(256) + CenterCrop(224) + ToTensor + Normalize. Both sides use two
worker threads/processes and batches of 64, and read one full epoch per repeat (after one
warm-up epoch). Prints images/s per side, the medians and the ratio; then the CPU time per
image of each side on one thread (glmx ``num_threads=1``, one full epoch; torchvision
``num_workers=0``, ``--cpu-batches`` batches; the minimum over the repeats), which depends far
less than images/s on what else runs on a shared machine, and its ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_folder(root: Path, files: int, size: int = 224, seed: int = 0) -> Path:
    """``root/train/cNN/NNNNN.jpg``: random crops of the two sample photos (written once)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    marker = root / f".done-{files}-{size}"
    if marker.exists():
        return root
    photos = [np.asarray(Image.open(f).convert("RGB")) for f in load_sample_images().filenames]
    rng = np.random.RandomState(seed)
    for i in range(files):
        p = photos[i % 2]
        y, x = rng.randint(p.shape[0] - size), rng.randint(p.shape[1] - size)
        crop = p[y : y + size, x : x + size]
        if rng.rand() < 0.5:
            crop = crop[:, ::-1]
        d = root / "train" / f"c{i % 10:02d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(d / f"{i:05d}.jpg", quality=90)
    marker.touch()
    return root


def epoch_rate(loader) -> float:
    t0 = time.perf_counter()
    n = 0
    for batch in loader:
        x = batch["pixel_values"] if isinstance(batch, dict) else batch[0]
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def cpu_ms_per_image(loader, max_batches: int | None = None) -> float:
    """Process CPU time (all threads) per image over one epoch or its first ``max_batches``."""
    t0, n = time.process_time(), 0
    for i, batch in enumerate(loader):
        x = batch["pixel_values"] if isinstance(batch, dict) else batch[0]
        n += x.shape[0]
        if max_batches is not None and i + 1 >= max_batches:
            break
    return (time.process_time() - t0) / n * 1e3


def glmx_loader(root: Path, mode: str, batch: int, threads: int):
    from glmx.data import ImageFolderLoader

    return ImageFolderLoader(
        root,
        "train",
        224,
        batch,
        train_transforms=mode == "train",
        shuffle=True,
        num_threads=threads,
        resize_size=256,
    )


def torchvision_loader(root: Path, mode: str, batch: int, workers: int):
    from torchvision import datasets
    from torchvision import transforms as T

    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if mode == "train":
        tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    else:
        tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    ds = datasets.ImageFolder(str(root / "train"), transform=tf)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="glmx threads = torchvision workers")
    ap.add_argument("--mode", choices=["train", "eval"], default="train")
    ap.add_argument("--dir", default=None, help="image folder cache (default: a temp dir)")
    ap.add_argument(
        "--cpu-batches", type=int, default=8, help="torchvision batches timed for CPU per image"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    base = Path(args.dir or os.path.join(tempfile.gettempdir(), "glmx-bench-images"))
    root = make_folder(base, args.files)
    sides = {
        "glmx": glmx_loader(root, args.mode, args.batch_size, args.workers),
        "torchvision": torchvision_loader(root, args.mode, args.batch_size, args.workers),
    }
    rates: dict[str, list[float]] = {k: [] for k in sides}
    for loader in sides.values():
        epoch_rate(loader)  # warm-up: page cache, worker start-up
    for r in range(args.repeats):
        for name, loader in sides.items():  # interleaved: both see the same machine load
            rates[name].append(epoch_rate(loader))
            print(f"repeat {r}: {name:<12} {rates[name][-1]:8.0f} images/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        f"{args.files} JPEGs 224x224, {args.mode} transforms, batch {args.batch_size}, "
        f"{args.workers} workers: glmx {med['glmx']:.0f} images/s, torchvision "
        f"{med['torchvision']:.0f} images/s, ratio {med['glmx'] / med['torchvision']:.2f}x"
    )
    del sides, loader  # stop the worker processes before the one-thread measurement
    # Prefetching makes a partial glmx epoch count work past its end, so glmx runs a whole
    # epoch; torchvision without workers builds exactly the batches it returns. The minimum
    # over the repeats is the least disturbed by other processes.
    one = glmx_loader(root, args.mode, args.batch_size, 1)
    tv = torchvision_loader(root, args.mode, args.batch_size, 0)
    epoch_rate(one)  # warm-up
    cpu = {
        "glmx": min(cpu_ms_per_image(one) for _ in range(args.repeats)),
        "torchvision": min(cpu_ms_per_image(tv, args.cpu_batches) for _ in range(args.repeats)),
    }
    print(
        f"CPU per image, one thread, {args.mode} transforms: glmx {cpu['glmx']:.2f} ms, "
        f"torchvision {cpu['torchvision']:.2f} ms, ratio {cpu['torchvision'] / cpu['glmx']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
