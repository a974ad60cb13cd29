"""``glmx control``: list, inspect, save, stop or abort running trainings (local only)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from glmx import control
from glmx.cli import fmt_duration, fmt_num, print_table

_HELP = {
    "list": "list registered jobs",
    "status": "show a job's step, epoch, loss, tokens/s and ETA",
    "save": "save a checkpoint at the next step boundary",
    "stop": "save a checkpoint, then stop gracefully",
    "save-stop": "same as stop",
    "abort": "stop at the next step boundary without saving",
    "cleanup": "remove entries of dead or finished jobs",
}


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``control`` sub-commands."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in _HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in ("list", "status"):
            p.add_argument(
                "--format", choices=["text", "json"], default="text", help="output format"
            )
        if name == "list":
            p.add_argument(
                "-a", "--all", action="store_true", help="include dead and finished jobs"
            )
        if name not in ("list", "cleanup"):
            p.add_argument(
                "job",
                nargs="?",
                default=None,
                help="job id, unique prefix or pid (default: newest live job)",
            )
        if name in control.COMMANDS:
            p.add_argument(
                "--timeout",
                type=float,
                default=60.0,
                help="seconds to wait for the job to confirm (0: do not wait)",
            )
        if name == "cleanup":
            p.add_argument(
                "--force",
                action="store_true",
                help="also remove stale entries (alive pid, silent > 10 min)",
            )


def _row(job: control.Job) -> dict[str, Any]:
    s = job.status
    return {
        "job": job.job_id,
        "pid": job.pid,
        "state": job.state,
        "step": s.get("step", ""),
        "epoch": s.get("epoch", ""),
        "loss": fmt_num(s.get("loss")),
        "tokens/s": fmt_num(s.get("tokens_per_sec"), 0),
        "eta": fmt_duration(s.get("eta_s")),
        "run_dir": job.info.get("run_dir", ""),
    }


def _status_text(job: control.Job) -> str:
    s, i = job.status, job.info
    total = f"/{s['max_steps']}" if s.get("max_steps") else ""
    lines = [
        f"job:         {job.job_id}",
        f"state:       {job.state}",
        f"pid:         {job.pid} on {i.get('host', '?')} (world size {i.get('world_size', 1)})",
        f"run dir:     {i.get('run_dir', '')}",
        f"step:        {s.get('step', '?')}{total}",
        f"epoch:       {s.get('epoch', '?')}",
        f"loss:        {fmt_num(s.get('loss'))}",
        f"tokens/s:    {fmt_num(s.get('tokens_per_sec'), 0)}",
        f"elapsed:     {fmt_duration(s.get('elapsed_s'))}",
        f"eta:         {fmt_duration(s.get('eta_s'))}",
        f"checkpoint:  {s.get('last_checkpoint') or '-'}",
    ]
    if s.get("updated"):
        lines.append(f"updated:     {time.time() - float(s['updated']):.1f} s ago")
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> int:
    """Runs one ``control`` action."""
    action = args.action
    if action == "list":
        found, problems = control.scan_jobs()
        jobs = [j for j in found if args.all or j.alive]
        if args.format == "json":
            print(json.dumps([j.to_dict() for j in jobs], indent=1))
        elif jobs:
            print_table([_row(j) for j in jobs])
        elif found:  # said on stderr: stdout stays empty for scripts
            print(
                f"no live jobs ({len(found)} ended; `glmx control list -a` shows them)",
                file=sys.stderr,
            )
        else:
            print(f"no jobs registered in {control.control_dir(create=False)}", file=sys.stderr)
        for problem in problems:
            print(
                f"glmx control: error: malformed job entry {problem} "
                "(`glmx control cleanup` removes it)",
                file=sys.stderr,
            )
        return 2 if problems else 0
    if action == "cleanup":
        removed = control.cleanup(force=args.force)
        for job_id in removed:
            print(f"removed {job_id}")
        return 0
    job = control.find_job(args.job)
    if action == "status":
        print(json.dumps(job.to_dict(), indent=1) if args.format == "json" else _status_text(job))
        return 0
    request = control.send(job, action)
    if args.timeout <= 0:
        print(f"{job.job_id}: {action} queued ({request})")
        return 0
    result = control.wait_result(job, request, args.timeout)
    if result is None:
        print(
            f"{job.job_id}: {action} queued, no answer within {args.timeout:g} s (the job acts at its next step)"
        )
        return 1
    if not result.get("ok"):
        print(f"{job.job_id}: {action} failed at step {result.get('step')}: {result.get('error')}")
        return 1
    where = f" -> {result['checkpoint']}" if result.get("checkpoint") else ""
    print(f"{job.job_id}: {action} done at step {result.get('step')}{where}")
    return 0
