"""`glmx serve` throughput and latency: dynamic batching on vs off, side by side.

Starts `glmx serve` twice on 127.0.0.1 (once with `--no-batching`), then for 1, 8 and 32
concurrent clients sends `POST /v1/embeddings` (one sequence each) for a fixed time and
prints requests/s and p50/p99 latency for both, and the ratio on/off.

    .venv/bin/python bench/bench_serve.py                      # tiny GPN (hidden 128, 8 layers)
    .venv/bin/python bench/bench_serve.py --hidden 512 --layers 16 --seq-len 512 --seconds 10
    .venv/bin/python bench/bench_serve.py --model runs/chr4 --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: str, batching: bool, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "glmx.cli",
        "serve",
        model,
        "--port",
        str(port),
        "--max-batch",
        str(args.max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--max-queue",
        "100000",
        "--max-seq-len",
        str(max(4096, args.seq_len)),
    ]
    if args.device:
        cmd += ["--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if not batching:
        cmd.append("--no-batching")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.3)


async def _load(url: str, clients: int, seconds: float, seqs: list[str]) -> dict[str, float]:
    import httpx

    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await http.post("/v1/embeddings", json={"input": seqs[i % len(seqs)]})
                if r.status_code != 200:
                    errors += 1
                lat.append(time.perf_counter() - t)
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {
        "rps": len(lat) / wall,
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "n": len(lat),
        "errors": errors,
    }


def main() -> None:
    """Runs the benchmark and prints the side-by-side table."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--model", default=None, help="model path (default: a random GPN of --hidden/--layers)"
    )
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=4.0, help="load time per cell")
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell (median reported)")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads in the server")
    args = ap.parse_args()

    import torch

    tmp = tempfile.TemporaryDirectory()
    model = args.model
    if model is None:
        from glmx.models import GPN, GPNConfig
        from glmx.models.gpn_hf import save_hf_dir

        torch.manual_seed(0)
        model = str(Path(tmp.name) / "model")
        save_hf_dir(
            GPN(GPNConfig(hidden_size=args.hidden, n_layers=args.layers)), model, tokenizer=False
        )
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), args.seq_len)) for _ in range(64)]
    clients = [int(c) for c in args.clients.split(",")]
    # both servers stay up; cells alternate on/off and repeat, so load drift on a shared
    # machine hits both sides alike; the medians over the repeats are reported
    servers = {b: _start(model, b, args) for b in (True, False)}
    runs: dict[tuple[bool, int], list[dict[str, float]]] = {}
    try:
        for _proc, url in servers.values():
            asyncio.run(_load(url, 1, 1.0, seqs))  # warm-up
        for c in clients:
            for _ in range(args.repeats):
                for batching, (_proc, url) in servers.items():
                    runs.setdefault((batching, c), []).append(
                        asyncio.run(_load(url, c, args.seconds, seqs))
                    )
    finally:
        for proc, _url in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    results = {
        key: {m: float(np.median([r[m] for r in rs])) for m in rs[0]} for key, rs in runs.items()
    }
    print(
        f"glmx serve /v1/embeddings, 1 x {args.seq_len} bp per request, model "
        f"{args.model or f'GPN hidden {args.hidden} x {args.layers} layers'}, "
        f"device {args.device or 'default'}, {os.cpu_count()} CPUs, median of {args.repeats} x "
        f"{args.seconds:g} s per cell"
    )
    print(
        f"{'clients':>7}  {'batching on: req/s  p50 ms  p99 ms':>36}  {'off: req/s  p50 ms  p99 ms':>28}  {'req/s on/off':>12}"
    )
    for c in clients:
        on, off = results[(True, c)], results[(False, c)]
        print(
            f"{c:>7}  {on['rps']:>19.1f} {on['p50']:>7.1f} {on['p99']:>7.1f}"
            f"  {off['rps']:>11.1f} {off['p50']:>7.1f} {off['p99']:>7.1f}  {on['rps'] / off['rps']:>12.2f}"
            + (
                f"  (errors on/off: {on['errors']}/{off['errors']})"
                if on["errors"] or off["errors"]
                else ""
            )
        )
    tmp.cleanup()


if __name__ == "__main__":
    main()
