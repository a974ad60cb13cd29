"""``glmx logs``: list, summarise and plot ``trainer_logs.json`` files."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from glmx import logs
from glmx.cli import fmt_duration, print_table
from glmx.errors import GlmxError


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``logs list|summary|plot``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser(
        "list", help="list training logs below a directory", description="list training logs"
    )
    p.add_argument(
        "root", nargs="?", default=None, help="directory to search (default: the project directory)"
    )
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    p = sub.add_parser(
        "summary",
        help="best loss, final metrics, duration, throughput",
        description="summarise logs",
    )
    p.add_argument(
        "path", nargs="?", default=None, help="log file or run directory (default: the newest log)"
    )
    p.add_argument(
        "--format", choices=["text", "json", "md", "one-line"], default="text", help="output format"
    )
    p.add_argument(
        "--all", action="store_true", help="summarise every log below the path / project"
    )
    p.add_argument("-o", "--output", default=None, help="write the summary to this file")

    p = sub.add_parser(
        "plot", help="plot metrics of one or several runs", description="plot training logs"
    )
    p.add_argument(
        "paths", nargs="*", help="log files or run directories (default: the newest log)"
    )
    p.add_argument(
        "--metrics", default=None, help="comma-separated metric names (default: the training loss)"
    )
    p.add_argument("--x-axis", choices=["step", "epoch", "time"], default="step", help="x axis")
    p.add_argument(
        "--smooth", type=int, default=0, metavar="N", help="moving average over N points"
    )
    p.add_argument("--log-scale", action="store_true", help="logarithmic y axis")
    p.add_argument(
        "--format",
        choices=["png", "svg", "pdf"],
        default=None,
        help="image format (default: from -o, else png)",
    )
    p.add_argument("--compare", nargs="+", default=[], metavar="PATH", help="more runs to overlay")
    p.add_argument("--labels", default=None, help="comma-separated run labels")
    p.add_argument(
        "--loss-curves",
        action="store_true",
        help="all loss metrics (train and val) with LR on a second axis",
    )
    p.add_argument("--no-lr", action="store_true", help="do not add the learning rate axis")
    p.add_argument(
        "-o", "--output", default=None, help="output file (default: <run>/plot.<format>)"
    )
    p.add_argument(
        "-e",
        "--open",
        action="store_true",
        help="open the plot with the platform's viewer (GLMX_OPENER overrides the command)",
    )


def _newest(root: Path) -> Path:
    found = logs.find_logs(root)
    if not found:
        raise GlmxError(f"no {logs.LOG_NAME} in or below {root}; pass a log file or run directory")
    return found[0]


def run(args: argparse.Namespace, command: str) -> int:
    """Runs one ``logs`` action."""
    root = Path(args.project_dir)
    if args.action == "list":
        rows = []
        for path in logs.find_logs(Path(args.root) if args.root else root):
            log = logs.TrainingLog.from_file(path)
            s = logs.summary(log)
            rows.append(
                {
                    "log": str(path),
                    "records": s["records"],
                    "last_step": s["last_step"] if s["last_step"] is not None else "-",
                    "modified": time.strftime(
                        "%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime)
                    ),
                    "duration": fmt_duration(s["duration_s"]),
                }
            )
        print_table(rows, args.format)
        return 0
    if args.action == "summary":
        base = Path(args.path) if args.path else root
        paths = (
            logs.find_logs(base) if args.all else [Path(args.path) if args.path else _newest(root)]
        )
        summaries = [logs.summary(p) for p in paths]
        if args.format == "json":
            text = json.dumps(summaries if args.all else summaries[0], indent=1)
        else:
            sep = "\n" if args.format == "one-line" else "\n\n"
            text = sep.join(logs.format_summary(s, args.format) for s in summaries)
        if args.output:
            try:
                Path(args.output).write_text(text + "\n", encoding="utf-8")
            except OSError as err:
                raise GlmxError(
                    f"cannot write summary to '{args.output}': {err.strerror}"
                ) from None
            print(f"wrote {args.output}")
        else:
            print(text)
        return 0
    paths = [Path(p) for p in args.paths] or [_newest(root)]
    paths += [Path(p) for p in args.compare]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    first = logs.TrainingLog.from_file(paths[0])
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output else "") or "png"
    output = Path(args.output) if args.output else first.path.parent / f"plot.{fmt}"
    if not output.suffix:
        output = output.with_suffix(f".{fmt}")
    fig = logs.plot(
        [first, *paths[1:]],
        metrics=metrics,
        x_axis=args.x_axis,
        smooth_window=args.smooth,
        log_scale=args.log_scale,
        output=output,
        fmt=fmt,
        loss_curves=args.loss_curves,
        labels=labels,
        lr=not args.no_lr,
    )
    print(f"wrote {output}")
    for name in fig.glmx_series:
        print(f"series: {name}")
    if args.open:
        open_file(output)
    return 0


def open_file(path: Path, wait: float = 2.0) -> None:
    """Opens ``path`` with the platform's viewer (``open``, ``os.startfile``, ``xdg-open``), or
    with the command in ``GLMX_OPENER`` (split like a shell line, the path appended).

    The file exists either way: when the viewer cannot open it (a headless machine's
    ``xdg-open`` exits non-zero within ``wait`` seconds, or there is no viewer) this prints a
    one-line warning with the file's location instead of "opened". A ``GLMX_OPENER`` command
    that does not exist is an error (the user's setting is wrong)."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys
    import tempfile

    where = path.resolve()
    custom = os.environ.get("GLMX_OPENER")
    if custom:
        cmd = [*shlex.split(custom), str(path)]
    elif sys.platform == "win32":
        try:
            os.startfile(str(path))  # type: ignore[attr-defined]  # noqa: S606
        except OSError as e:
            _open_failed(f"could not open {path}: {e}; the file is at {where}")
            return
        print(f"opened {path}")
        return
    else:
        cmd = ["open" if sys.platform == "darwin" else "xdg-open", str(path)]
    if shutil.which(cmd[0]) is None:
        if custom:
            raise GlmxError(
                f"cannot open {path}: '{cmd[0]}' not found; open the file yourself or set "
                "GLMX_OPENER to a viewer command"
            )
        _open_failed(
            f"could not open {path}: '{cmd[0]}' not found (no desktop viewer); "
            f"the file is at {where}"
        )
        return
    # stderr to a file, not a pipe: a viewer that outlives us must not block or get SIGPIPE.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            # openers (xdg-open, open) hand the file over and exit; a viewer keeps running
            code = proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            code = 0
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    if code != 0:
        why = f": {lines[-1].strip()}" if lines else ""
        _open_failed(
            f"could not open {path} with {cmd[0]} (exit {code}{why}); the file is at {where}"
        )
        return
    print(f"opened {path} with {cmd[0]}")


def _open_failed(message: str) -> None:
    import warnings

    # glmx's CLI prints its own warnings as one line: "glmx logs: warning: ..."
    warnings.warn(message, RuntimeWarning, stacklevel=2)
