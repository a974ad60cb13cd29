"""The ``glmx`` command line.

Each command lives in a module ``glmx.cli.<module>`` (several commands may share one) with two
functions: ``add_arguments(parser: argparse.ArgumentParser, command: str) -> None`` and
``run(args: argparse.Namespace, command: str) -> int`` (the exit code). Global options are
``args.project_dir`` and ``args.config``. A ``GlmxError`` becomes a one-line message and exit 2.
Only the chosen command's module is imported, so ``glmx ls`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

# command -> (module under glmx.cli, one-line help). Order is the order of `glmx --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "ls": ("inspect", "list the project's configs with their descriptions"),
    "pp": ("inspect", "print a config rendered (-d: the translated template)"),
    "meta": ("inspect", "print the project's meta.yaml settings"),
    "targets": ("inspect", "list a config's targets"),
    "tlist": ("inspect", "list the templates on the search path"),
    "templates": ("inspect", "list the templates on the search path (as tlist)"),
    "trefs": ("inspect", "show the template inheritance tree"),
    "graph": ("inspect", "print a config's node graph (yaml or python)"),
    "code": ("inspect", "print standalone Python that builds a target"),
    "construct": ("inspect", "materialize a target (and optionally call it)"),
    "index": ("inspect", "project overview as markdown"),
    "train": ("train", "train: in-process, or torchrun over the listed devices"),
    "tb": ("train", "start TensorBoard on 127.0.0.1 over the run's logs"),
    "control": ("control", "list, inspect, save, stop or abort running trainings"),
    "logs": ("logs", "list, summarise and plot training logs"),
    "ws": ("scaffold", "create a workspace"),
    "project": ("scaffold", "create a project from a template"),
    "data": ("data", "prepare genomic training data (promoters, windows)"),
    "score": ("score", "score variants with a trained model"),
    "bench-vep": ("bench_vep", "zero-shot variant-effect proxy on a genome's annotation"),
    "env": ("env", "detect the compute environment (SLURM, GPUs, scratch)"),
    "slurm": ("slurm", "submit trainings to SLURM"),
    "exp": ("exp", "list, show, compare and export experiments"),
    "server": ("server", "start the platform server (API, run queue, agents)"),
    "agent": ("agent", "run a training agent that takes runs from a platform server"),
    "runs": ("runs", "submit, list, show and cancel runs on a platform server"),
    "export": ("export", "export a model (hf: a Hugging Face GPN directory)"),
    "serve": ("serve", "serve a model over HTTP: embeddings, logits, variant scores"),
    "client": ("client", "call a running `glmx serve`"),
    "model": ("model", "model test: forward + backward on a random batch"),
}


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number for a table: ``-`` when missing, ``digits`` significant digits otherwise."""
    if value is None or value == "":
        return "-"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if digits == 0:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def fmt_duration(seconds: Any) -> str:
    """``1h02m03s`` style, ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(float(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def print_table(rows: list[dict[str, Any]], fmt: str = "text") -> None:
    """Prints ``rows`` as aligned plain-text columns (header from the first row's keys), or as
    a JSON list when ``fmt == "json"``."""
    if fmt == "json":
        print(json.dumps(rows, indent=1, default=str))
        return
    if not rows:
        return
    cols = list(rows[0])
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="glmx",
        description="glmx: train, inspect and evaluate genomic language models.",
    )
    parser.add_argument("-p", "--project-dir", default=".", help="project directory (default: .)")
    parser.add_argument(
        "-t", "--config", default=None, help="config name (default: the project's default)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        # the global options are also accepted after the command (`glmx pp -t x.yaml`)
        cmd.add_argument("-p", "--project-dir", default=argparse.SUPPRESS, help="project directory")
        cmd.add_argument("-t", "--config", default=argparse.SUPPRESS, help="config name")
        if name == command:
            mod = importlib.import_module(f"glmx.cli.{module}")
            mod.add_arguments(cmd, name)
    return parser


def _find_command(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-p", "--project-dir", "-t", "--config"):
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg if arg in COMMANDS else None
    return None


def _one_line_warnings(prefix: str) -> None:
    """glmx's own warnings (a skipped file, a bad line) print as one line naming what they are
    about; the source line that issued them means nothing to a CLI user. Other packages'
    warnings keep Python's format."""
    import warnings

    default = warnings.formatwarning
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def formatwarning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if os.path.abspath(filename).startswith(package + os.sep):
            return f"{prefix}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


def _stdout_gone() -> bool:
    """True when the reader of stdout has gone (`glmx ls | head -1`): nothing more to say.
    A pipe without a reader polls as an error; stdout then points at /dev/null, so the
    interpreter's last flush does not complain either."""
    import select

    try:
        fd = sys.stdout.fileno() if sys.stdout is not None else 1
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        gone = any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return gone


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``glmx`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.stdout is None:  # started with stdout closed (`glmx pp >&-`): output goes nowhere
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    command = _find_command(argv)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(f"glmx.cli.{COMMANDS[args.command][0]}")
    from glmx.errors import GlmxError

    _one_line_warnings(f"glmx {args.command}")

    try:
        code = int(module.run(args, args.command) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # a pipe of the command's own (a worker, a socket) broke: a real failure
        return 0
    except GlmxError as err:
        print(f"glmx {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glmx {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
