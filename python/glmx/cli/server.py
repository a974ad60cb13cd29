"""``glmx server``: the platform server (REST API, queue, leases) on uvicorn."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``server`` options."""
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--db",
        default=None,
        help="database URL (default $GLMX_DB_URL, else SQLite in the data dir); "
        "e.g. postgresql+psycopg://user@host:5432/glmx",
    )
    parser.add_argument("--home", default=None, help="data dir (default $GLMX_PLATFORM_HOME)")
    parser.add_argument("--runs-dir", default=None, help="runs root (default <home>/runs)")
    parser.add_argument("--data-dir", default=None, help="data root (default <home>/data)")
    parser.add_argument(
        "--configs", default=None, help="config tree of experiments (default ./configs)"
    )
    parser.add_argument(
        "--cors", default=None, help="comma-separated CORS origins (default $GLMX_CORS_ORIGINS)"
    )
    parser.add_argument(
        "--lease", type=float, default=30.0, help="seconds before a silent agent's run is requeued"
    )
    parser.add_argument(
        "--max-body-mb", type=float, default=8.0, help="largest request body in MiB (413 above)"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level")


def run(args: argparse.Namespace, command: str) -> int:
    """Starts the server (until Ctrl-C)."""
    import os

    from glmx._optional import require

    for module in ("fastapi", "uvicorn", "sqlalchemy", "alembic"):
        require(module, "platform", "glmx server")
    from glmx.platform.app import serve
    from glmx.platform.settings import TOKEN_ENV, Settings

    settings = Settings.from_env(
        db_url=args.db,
        home=args.home,
        runs_dir=args.runs_dir,
        data_dir=args.data_dir,
        configs_dir=args.configs,
        cors_origins=[o.strip() for o in args.cors.split(",") if o.strip()] if args.cors else None,
        lease_s=args.lease,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
    )
    _check_database(settings.db_url)
    where = "$" + TOKEN_ENV if os.environ.get(TOKEN_ENV) else settings.home / "token"
    print(f"glmx server: http://{args.host}:{args.port}  (API docs at /docs)", file=sys.stderr)
    print(f"glmx server: database {settings.db_url.split('@')[-1]}", file=sys.stderr)
    print(f"glmx server: token from {where}; runs in {settings.runs_dir}", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"glmx server: listening on {args.host}: anyone who can reach it and holds the "
            "token can launch code on your agents",
            file=sys.stderr,
        )
    serve(settings, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _check_database(url: str) -> None:
    """Connects and migrates before uvicorn starts, so a bad URL is one line and exit 2."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from glmx.platform.db import Database
    from glmx.platform.settings import PlatformError

    db = Database(url)
    try:
        db.migrate()
    except SQLAlchemyError as err:
        shown = make_url(url).render_as_string(hide_password=True)
        first = str(err.orig if getattr(err, "orig", None) else err).strip().splitlines()[0]
        raise PlatformError(f"database {shown}: {first}") from None
    finally:
        db.dispose()
