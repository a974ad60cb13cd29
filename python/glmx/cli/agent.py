"""``glmx agent``: a training agent that takes runs from a platform server."""

from __future__ import annotations

import argparse
import logging
import os


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``agent`` options."""
    parser.add_argument("--server", default=None, help="server URL (default $GLMX_PLATFORM_URL)")
    parser.add_argument("--token", default=None, help="API token (default $GLMX_PLATFORM_TOKEN)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (one GPU per agent)")
    parser.add_argument("--name", default="", help="agent name (default host:device)")
    parser.add_argument(
        "--configs", default=None, help="config tree for python -m glmx.train (default ./configs)"
    )
    parser.add_argument(
        "--work-dir", default=None, help="working directory of trainings (default: here)"
    )
    parser.add_argument(
        "--runs-dir",
        default=None,
        help="write runs here instead of the server's runs root (no shared file system)",
    )
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between claims")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    parser.add_argument("--max-runs", type=int, default=None, help="exit after N runs")
    parser.add_argument(
        "--exit-when-idle", type=float, default=None, help="exit after N seconds without work"
    )


def run(args: argparse.Namespace, command: str) -> int:
    """Runs the agent until stopped."""
    from glmx._optional import require
    from glmx.platform.client import default_token
    from glmx.platform.settings import URL_ENV, PlatformError

    require("httpx", "platform", "glmx agent")
    from glmx.platform.agent import Agent

    server = args.server or os.environ.get(URL_ENV)
    if not server:
        raise PlatformError(f"glmx agent needs --server URL or ${URL_ENV}")
    token = args.token or default_token()
    if not token:
        raise PlatformError("no token: pass --token or set GLMX_PLATFORM_TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    agent = Agent(
        server,
        token,
        device=args.device,
        name=args.name,
        configs_dir=args.configs,
        work_dir=args.work_dir,
        runs_dir=args.runs_dir,
        poll_s=args.poll,
        heartbeat_s=args.heartbeat,
        max_runs=args.max_runs,
        exit_when_idle=args.exit_when_idle,
    )
    done = agent.serve()
    logging.getLogger("glmx.platform.agent").info("agent exiting after %d runs", done)
    return 0
