"""``glmx runs``: submit, list, show, cancel and wait for runs on a platform server."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from glmx.cli import fmt_duration, fmt_num, print_table

_HELP = {
    "submit": "enqueue a run: glmx runs submit experiment=NAME key=value ... (prints its id)",
    "list": "list runs, newest first",
    "show": "show one run",
    "cancel": "cancel a queued or running run",
    "wait": "wait until a run has finished (exit 1 unless it is done)",
}


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``runs`` sub-commands."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in _HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--server", default=None, help="server URL (default $GLMX_PLATFORM_URL)")
        p.add_argument("--token", default=None, help="API token (default $GLMX_PLATFORM_TOKEN)")
        if name == "submit":
            p.add_argument("overrides", nargs="*", help="experiment=NAME and key=value overrides")
            p.add_argument("--name", default="", help="run name")
            p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
            p.add_argument("--project", default="default", help="project (default: default)")
            p.add_argument("--config-id", type=int, default=None, help="a stored config")
            p.add_argument("--priority", type=int, default=0, help="higher runs first")
            p.add_argument(
                "--kind",
                choices=["train", "smoke"],
                default="train",
                help="train (python -m glmx.train) or smoke (built-in test workload)",
            )
        if name in ("list", "show"):
            p.add_argument("--format", choices=["text", "json"], default="text")
        if name == "list":
            p.add_argument("--state", default=None, help="comma-separated states")
            p.add_argument("--limit", type=int, default=50, help="at most N runs")
        if name in ("show", "cancel", "wait"):
            p.add_argument("run_id", type=int, help="run id")
        if name == "wait":
            p.add_argument("--timeout", type=float, default=3600.0, help="seconds")


def _row(r: dict[str, Any]) -> dict[str, Any]:
    loss = (r.get("final_metrics") or {}).get("train/loss") or {}
    end = r.get("finished") or (time.time() if r.get("started") else None)
    return {
        "id": r["id"],
        "state": r["state"],
        "name": r["name"],
        "agent": r.get("agent_id") or "-",
        "step": r.get("last_step", 0),
        "train/loss": fmt_num(loss.get("value")),
        "duration": fmt_duration(end - r["started"] if end and r.get("started") else None),
    }


def run(args: argparse.Namespace, command: str) -> int:
    """Runs one ``runs`` action."""
    from glmx._optional import require
    from glmx.platform.client import Client

    require("httpx", "platform", "glmx runs")
    with Client(args.server, args.token) as client:
        if args.action == "submit":
            experiment = None
            rest = []
            for ov in args.overrides:
                if ov.startswith("experiment="):
                    experiment = ov.split("=", 1)[1]
                else:
                    rest.append(ov)
            run = client.submit(
                experiment,
                rest,
                name=args.name,
                tags=args.tag,
                project=args.project,
                config_id=args.config_id,
                kind=args.kind,
                priority=args.priority,
            )
            print(run["id"])
            return 0
        if args.action == "list":
            runs = client.runs(state=args.state, limit=args.limit)
            if args.format == "json":
                print(json.dumps(runs, indent=1))
            elif runs:
                print_table([_row(r) for r in runs])
            return 0
        if args.action == "show":
            r = client.run(args.run_id)
            if args.format == "json":
                print(json.dumps(r, indent=1))
            else:
                for key in (
                    "id",
                    "name",
                    "state",
                    "experiment",
                    "overrides",
                    "tags",
                    "agent_id",
                    "attempt",
                    "last_step",
                    "exit_code",
                    "run_dir",
                ):
                    print(f"{key + ':':<12} {r.get(key)}")
                for key, m in (r.get("final_metrics") or {}).items():
                    print(
                        f"{key + ':':<12} {fmt_num(m.get('value'))} (best {fmt_num(m.get('best'))})"
                    )
            return 0
        if args.action == "cancel":
            r = client.cancel(args.run_id)
            print(
                f"run {r['id']}: {r['state']}"
                + (" (cancel requested)" if r["pending_action"] else "")
            )
            return 0
        r = client.wait(args.run_id, timeout=args.timeout)
        print(f"run {r['id']}: {r['state']}")
        return 0 if r["state"] == "done" else 1
