"""Database engine, sessions and migrations.

SQLite runs in WAL mode with a busy timeout; transactions that write begin ``IMMEDIATE`` (so two
writers never deadlock upgrading a read lock, and a claim is atomic), read-only ones begin
deferred. PostgreSQL uses its defaults; claims there use ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from glmx.platform.settings import PlatformError

__all__ = ["Database", "MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Database:
    """An engine plus session factories for one database URL."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise PlatformError(
                f"database URL '{url}' is not a valid SQLAlchemy URL; use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST:PORT/DB"
            ) from None
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite:
                self.engine: Engine = create_engine(
                    url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=20
                )
                _sqlite_pragmas(self.engine)
            else:
                self.engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
        except (NoSuchModuleError, ModuleNotFoundError) as err:
            raise PlatformError(f"database URL '{url}': driver not available ({err})") from None
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # One writer at a time inside this process: SQLite serializes writers anyway, and
        # waiting on a Python lock is cheaper than spinning on SQLITE_BUSY.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads (rolled back at the end)."""
        with self._factory() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session committed at the end (``BEGIN IMMEDIATE`` on SQLite)."""
        if self._write_lock is None:
            with self._factory() as session, session.begin():
                yield session
            return
        with self._write_lock:
            conn = self.engine.connect().execution_options(glmx_begin="IMMEDIATE")
            try:
                with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                    yield session
            finally:
                conn.close()

    def migrate(self) -> None:
        """Applies the packaged Alembic migrations up to ``head``."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # pysqlite's own transaction handling is turned off: "begin" below emits BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("glmx_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())
