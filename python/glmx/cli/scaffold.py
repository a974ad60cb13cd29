"""``glmx ws create`` and ``glmx project create``: new workspaces and projects."""

from __future__ import annotations

import argparse
from pathlib import Path

from glmx import scaffold
from glmx.errors import GlmxError


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``ws create`` / ``project create``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    what = "workspace" if command == "ws" else "project"
    p = sub.add_parser("create", help=f"create a {what}", description=f"create a {what}")
    p.add_argument(
        "directory", nargs="?", default=None, help="where to create it (default: ./NAME)"
    )
    p.add_argument("--name", default=None, help=f"{what} name (default: the directory name)")
    p.add_argument("--description", default="", help="one-line description")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    if command == "ws":
        p.add_argument(
            "--search-path",
            action="append",
            default=[],
            metavar="DIR",
            help="extra template directory for the workspace's projects (repeatable)",
        )
    if command == "project":
        p.add_argument(
            "--default-config",
            default="tiny_cpu.yaml",
            help="name of the default config (default: tiny_cpu.yaml)",
        )
        p.add_argument(
            "--hydra",
            action="store_true",
            help="emit a Hydra-style configs/ tree instead of templates",
        )
        p.add_argument(
            "--copy-config",
            action="append",
            default=[],
            metavar="FILE",
            help="copy this config into configs/ (repeatable; the first is the default config)",
        )


def run(args: argparse.Namespace, command: str) -> int:
    """Creates the workspace or project and prints its directory."""
    if args.directory is None and args.name is None:
        raise GlmxError(f"glmx {command} create needs a DIRECTORY or --name")
    target = Path(args.directory) if args.directory else Path(args.name)
    if command == "ws":
        root = scaffold.create_workspace(
            target, args.name, args.description, force=args.force, search_path=args.search_path
        )
        print(f"created workspace {root}")
        return 0
    root = scaffold.create_project(
        target,
        args.name,
        args.description,
        args.default_config,
        hydra=args.hydra,
        force=args.force,
        copy_config=args.copy_config,
    )
    kind = "Hydra project" if args.hydra else "project"
    print(f"created {kind} {root}")
    print(f"next: cd {root} && glmx {'train --hydra' if args.hydra else 'ls'}")
    return 0
