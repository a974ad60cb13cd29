"""``glmx exp``: list, show, compare, export and harvest experiments from the registry."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

FORMATS = ("table", "json", "csv")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of ``glmx exp``."""
    parser.add_argument(
        "--root", action="append", help="directory searched for runs (repeatable; default: -p)"
    )
    parser.add_argument("--index", help="index file (default: <project>/.glmx/experiments.sqlite)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="one line per run")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--status", help="only runs with this status")
    p = sub.add_parser("show", help="everything recorded about one run")
    p.add_argument("id", help="run id (or a unique prefix), name or run directory")
    p = sub.add_parser("compare", help="config differences and metrics of several runs")
    p.add_argument("ids", nargs="+")
    p = sub.add_parser("export", help="all runs with flattened metrics")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("-o", "--output", help="file to write (default: stdout)")
    p = sub.add_parser("harvest", help="refresh states from squeue/sacct and pull final metrics")
    p.add_argument(
        "--manager",
        metavar="MODULE:CLASS",
        help="an ExperimentManager subclass whose harvest() to use",
    )
    p.add_argument("--format", choices=FORMATS, default="table")


def _index(args: argparse.Namespace) -> Any:
    from glmx.tracking import ExperimentIndex

    roots = args.root or [args.project_dir]
    path = args.index or Path(args.project_dir) / ".glmx" / "experiments.sqlite"
    return ExperimentIndex(roots, path)


def _main_metric(metrics: dict[str, Any]) -> tuple[str, Any]:
    for name in sorted(metrics, key=lambda n: (not n.startswith("val"), n)):
        if "loss" in name:
            return name, metrics[name]
    return "", None


def _row(r: dict[str, Any]) -> dict[str, Any]:
    name, final = _main_metric(r.get("final_metrics") or {})
    best = (r.get("best_metrics") or {}).get(name, {}).get("value") if name else None
    job = r.get("job_id") or ""
    if r.get("array_task_id") not in (None, ""):
        job = f"{r.get('array_job_id') or job}_{r['array_task_id']}"
    sha = (r.get("git_sha") or "")[:8] + ("+" if r.get("git_dirty") else "")
    return {
        "id": r["id"],
        "status": r["status"],
        "job": job,
        "name": r["name"],
        "gpu": r.get("gpu") or "",
        "restarts": r.get("restarts", 0),
        "git": sha,
        "overrides": " ".join(r.get("overrides") or []),
        "metric": name,
        "final": final,
        "best": best,
        "run_dir": r["run_dir"],
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=1, default=str))
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)
        print(buf.getvalue(), end="")
        return
    cols = ["id", "status", "job", "restarts", "gpu", "git", "overrides", "metric", "final", "best"]
    table = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=False)).rstrip())
    if not rows:
        print("(no runs)")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def _compare(index: Any, ids: list[str]) -> None:
    from glmx.tracking import RunRecord

    runs = [index.get(i) for i in ids]
    flat = []
    for r in runs:
        cfg = _flatten(RunRecord(r["run_dir"]).config())
        for o in r.get("overrides") or []:
            key, _, val = o.lstrip("+~").partition("=")
            cfg.setdefault(key, val)
        flat.append(cfg)
    keys = sorted(
        {k for f in flat for k in f if len({json.dumps(g.get(k), default=str) for g in flat}) > 1}
    )
    print("config differences:" if keys else "config: identical")
    for k in keys:
        print(f"  {k}: " + " | ".join(_fmt(f.get(k, "-")) for f in flat))
    metrics = sorted({m for r in runs for m in r.get("final_metrics") or {}})
    print("metrics (final / best):  " + " | ".join(str(r["id"]) for r in runs))
    for m in metrics:
        cells = []
        for r in runs:
            final = (r.get("final_metrics") or {}).get(m)
            best = (r.get("best_metrics") or {}).get(m, {}).get("value")
            cells.append(_fmt(final) + (f" / {_fmt(best)}" if best is not None else ""))
        print(f"  {m}: " + " | ".join(cells))


def run(args: argparse.Namespace, command: str) -> int:
    """Dispatch on the action."""
    index = _index(args)
    if args.action == "harvest":
        from glmx.cli.slurm import _manager_class

        runs = _manager_class(args.manager)().harvest_all(index)
        _print_rows([_row(r) for r in runs], args.format)
        return 0
    index.refresh()
    if args.action == "list":
        _print_rows([_row(r) for r in index.runs(args.status)], args.format)
    elif args.action == "show":
        from glmx.tracking import RunRecord
        from glmx.tracking.index import read_events

        r = index.get(args.id)
        record = RunRecord(r["run_dir"])
        events = read_events(r["run_dir"])
        print(json.dumps({**r, "config": record.config(), "events": events}, indent=1, default=str))
    elif args.action == "compare":
        _compare(index, args.ids)
    elif args.action == "export":
        rows = []
        for r in index.runs():
            row = {k: v for k, v in _row(r).items() if k not in ("metric", "final", "best")}
            row.update({f"final/{k}": v for k, v in (r.get("final_metrics") or {}).items()})
            row.update({f"best/{k}": v["value"] for k, v in (r.get("best_metrics") or {}).items()})
            row["created"] = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(r["created"]))
                if r.get("created")
                else ""
            )
            rows.append(row)
        cols = sorted(
            {k for row in rows for k in row}, key=lambda k: (k.startswith(("final/", "best/")), k)
        )
        rows = [{c: row.get(c, "") for c in cols} for row in rows]
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
        try:
            if args.format == "json":
                out.write(json.dumps(rows, indent=1, default=str) + "\n")
            else:
                writer = csv.DictWriter(out, fieldnames=cols or ["id"])
                writer.writeheader()
                writer.writerows(rows)
        finally:
            if args.output:
                out.close()
    return 0
