"""Server settings: database URL, roots, token, CORS and limits, from arguments and environment.

Environment variables (a command-line flag wins over its variable):

- ``GLMX_DB_URL``: SQLAlchemy URL (default: SQLite ``platform.db`` in the data dir);
- ``GLMX_PLATFORM_HOME``: the server's data dir (default ``$XDG_DATA_HOME/glmx/platform`` or
  ``~/.local/share/glmx/platform``): database, token file, ``runs/``;
- ``GLMX_PLATFORM_TOKEN``: the API token (otherwise read from, or created in, ``<home>/token``
  with mode 0600);
- ``GLMX_CORS_ORIGINS``: comma-separated origins allowed by CORS (default: none);
- ``GLMX_RUNS_DIR`` / ``GLMX_DATA_DIR``: the runs root and the data root (no endpoint and no run
  override reads or writes outside them);
- ``GLMX_PLATFORM_CONFIGS``: the config tree runs are composed from (default ``./configs``).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from glmx.errors import GlmxError

__all__ = ["PlatformError", "Settings", "default_home", "load_or_create_token"]

TOKEN_ENV = "GLMX_PLATFORM_TOKEN"
URL_ENV = "GLMX_PLATFORM_URL"


class PlatformError(GlmxError):
    """A platform server, agent or client error (bad settings, an API error answer)."""


def default_home() -> Path:
    """The server's data directory."""
    env = os.environ.get("GLMX_PLATFORM_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "glmx" / "platform"


def load_or_create_token(home: Path) -> str:
    """``$GLMX_PLATFORM_TOKEN``, else the token in ``<home>/token`` (created with mode 0600 and
    a random value at first start; refused when others can read it)."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    path = home / "token"
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PlatformError(
                f"token file {path} is readable by other users (mode {oct(mode)}); "
                f"run `chmod 600 {path}`"
            )
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def config_tree(given: str | os.PathLike[str] | None) -> Path | None:
    """The experiment tree: ``given``, ``$GLMX_PLATFORM_CONFIGS``, ``./configs`` when it exists,
    else None (glmx's shipped tree: ``python -m glmx.train``'s own fallback)."""
    chosen = given or os.environ.get("GLMX_PLATFORM_CONFIGS")
    if chosen:
        path = Path(chosen).resolve()
        if not path.is_dir():
            raise PlatformError(f"config tree {path} is not a directory (--configs)")
        return path
    local = Path.cwd() / "configs"
    return local.resolve() if (local / "train.yaml").is_file() else None


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@dataclass
class Settings:
    """Everything the server needs; :meth:`from_env` fills unset fields from the environment.

    Args:
        db_url: SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
        home: data dir (token file, default database and runs root).
        runs_dir: root of run directories (``<runs_dir>/run-<id>``).
        data_dir: root that path-valued run overrides must stay inside.
        configs_dir: config tree used to validate and launch experiments (None: glmx's own).
        token: API token (mutating calls and agents need it).
        cors_origins: origins allowed by CORS.
        max_body_bytes: requests with a larger body get 413.
        lease_s: a run whose agent has not heartbeated for this long is requeued.
    """

    db_url: str = ""
    home: Path = field(default_factory=default_home)
    runs_dir: Path | None = None
    data_dir: Path | None = None
    configs_dir: Path | None = None
    token: str = ""
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 8 * 1024 * 1024
    lease_s: float = 30.0

    @classmethod
    def from_env(cls, **given: object) -> Settings:
        """Settings from keyword arguments (None means unset) and the environment."""
        kw = {k: v for k, v in given.items() if v is not None}
        s = cls(**kw)  # type: ignore[arg-type]
        s.home = Path(s.home)
        s.db_url = s.db_url or os.environ.get("GLMX_DB_URL", "")
        if not s.db_url:
            s.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            s.db_url = f"sqlite:///{(s.home / 'platform.db').resolve()}"
        s.runs_dir = Path(s.runs_dir or os.environ.get("GLMX_RUNS_DIR") or s.home / "runs")
        s.data_dir = Path(s.data_dir or os.environ.get("GLMX_DATA_DIR") or s.home / "data")
        s.configs_dir = config_tree(s.configs_dir)
        s.runs_dir = s.runs_dir.resolve()
        s.data_dir = s.data_dir.resolve()
        s.runs_dir.mkdir(parents=True, exist_ok=True)
        if not s.cors_origins:
            s.cors_origins = _split(os.environ.get("GLMX_CORS_ORIGINS"))
        if not s.token:
            s.token = load_or_create_token(s.home)
        if s.lease_s <= 0:
            raise PlatformError(f"lease_s must be > 0, got {s.lease_s}")
        return s
