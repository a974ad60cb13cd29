"""``glmx env``: print the detected compute environment (cached per project)."""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of ``glmx env``."""
    parser.add_argument(
        "--refresh", action="store_true", help="re-detect instead of using the cache"
    )
    parser.add_argument(
        "--max-age", type=float, default=600.0, help="seconds a cached detection stays valid"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--run", help="a run directory: warn if --partition/--gpu-type has another GPU type"
    )
    parser.add_argument("--partition", help="partition the run would resume on (with --run)")
    parser.add_argument("--gpu-type", help="GPU type the run would resume on (with --run)")


def run(args: argparse.Namespace, command: str) -> int:
    """Detect (or load) and print; exit 1 when a GPU-type warning was printed."""
    from glmx.cluster.env import gpu_type_warning, load_environment

    env = load_environment(args.project_dir, refresh=args.refresh, max_age=args.max_age)
    warning = None
    if args.run:
        from glmx.tracking.record import RunRecord

        started = [
            e.get("gpu")
            for e in RunRecord(args.run).events()
            if e["event"] == "started" and e.get("gpu")
        ]
        targets = [args.gpu_type] if args.gpu_type else []
        if not targets and args.partition and env.partition(args.partition):
            targets = sorted(env.partition(args.partition).gpus)  # type: ignore[union-attr]
        warning = gpu_type_warning(started[0] if started else None, targets)
    if args.json:
        print(json.dumps({**env.to_dict(), "gpu_warning": warning}, indent=1))
        return 1 if warning else 0
    age = time.time() - env.detected_at
    print(f"user      {env.user}")
    print(f"host      {env.hostname}")
    print(f"scratch   {env.scratch}")
    print(f"slurm     {env.slurm_version or 'no'}")
    accounts = ", ".join(sorted({a["account"] for a in env.accounts})) or "-"
    print(f"accounts  {accounts}")
    if env.partitions:
        print(f"{'partition':<16}{'nodes':>6}  {'gpus (free/total)':<32}{'pending gpus':>12}")
        for p in env.partitions:
            gpus = (
                ", ".join(f"{k} {p.free_gpus.get(k, 0)}/{v}" for k, v in sorted(p.gpus.items()))
                or "-"
            )
            name = p.name + ("*" if p.default else "")
            print(f"{name:<16}{p.nodes:>6}  {gpus:<32}{p.pending_gpus:>12}")
    for note in env.notes:
        print(f"note: {note}")
    print(f"(detected {age:.0f} s ago; --refresh to re-detect)")
    if warning:
        print(f"warning: {warning}")
        return 1
    return 0
