"""``Client(url, token)``: the Python client of the platform's REST API (what the CLI uses)."""

from __future__ import annotations

import os
from typing import Any

from glmx.platform.settings import TOKEN_ENV, URL_ENV, PlatformError, default_home

__all__ = ["APIError", "Client", "default_token"]


class APIError(PlatformError):
    """The server answered with an error status; ``status`` holds it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def default_token() -> str | None:
    """``$GLMX_PLATFORM_TOKEN``, else the token file of a server on this machine (if readable)."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    path = default_home() / "token"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI / pydantic validation errors
        parts = []
        for d in detail:
            loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
            parts.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
        detail = "; ".join(parts)
    return str(detail)


class Client:
    """A connection to a platform server.

    Args:
        url: server base URL (default ``$GLMX_PLATFORM_URL``, else ``http://127.0.0.1:8000``).
        token: API token (default ``$GLMX_PLATFORM_TOKEN`` or the local server's token file).
        timeout: seconds per request.

    Example::

        from glmx.platform import Client
        c = Client("http://127.0.0.1:8000", token)
        run = c.submit("tiny_cpu", ["trainer.max_epochs=1"])
        c.wait(run["id"])["state"]   # 'done'
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0):
        import httpx

        self.url = (url or os.environ.get(URL_ENV) or "http://127.0.0.1:8000").rstrip("/")
        self.token = token or default_token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """One API call; the decoded JSON answer (None for 204). Raises :class:`APIError` on
        an error status and :class:`PlatformError` when the server cannot be reached."""
        import httpx

        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as err:
            raise PlatformError(f"cannot reach the platform server at {self.url}: {err}") from None
        if response.status_code >= 400:
            raise APIError(
                response.status_code,
                f"{method} {path}: {response.status_code} {_detail(response)}",
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- runs ---------------------------------------------------------------------------------
    def submit(
        self,
        experiment: str | None = None,
        overrides: list[str] | None = None,
        *,
        name: str = "",
        tags: list[str] | None = None,
        project: str = "default",
        config_id: int | None = None,
        kind: str = "train",
        priority: int = 0,
    ) -> dict[str, Any]:
        """Enqueues a run; returns it (``id``, ``state`` ``queued``, ``run_dir``)."""
        body = {
            "experiment": experiment,
            "overrides": list(overrides or []),
            "name": name,
            "tags": list(tags or []),
            "project": project,
            "config_id": config_id,
            "kind": kind,
            "priority": priority,
        }
        return self.request("POST", "/api/v1/runs", json=body)

    def runs(self, state: str | None = None, limit: int = 100, **params: Any) -> list[dict]:
        """Runs, newest first (``state``: e.g. ``"running"`` or ``"queued,running"``)."""
        params = {k: v for k, v in {"state": state, "limit": limit, **params}.items() if v}
        return self.request("GET", "/api/v1/runs", params=params)["runs"]

    def run(self, run_id: int) -> dict[str, Any]:
        """One run, with its directory, summary and events."""
        return self.request("GET", f"/api/v1/runs/{int(run_id)}")

    def action(self, run_id: int, action: str) -> dict[str, Any]:
        """``save``, ``stop``, ``cancel`` or ``requeue``."""
        return self.request("POST", f"/api/v1/runs/{int(run_id)}/actions/{action}")

    def cancel(self, run_id: int) -> dict[str, Any]:
        """Cancels a queued or running run."""
        return self.action(run_id, "cancel")

    def metrics(self, run_id: int, key: str | None = None, **params: Any) -> list[dict]:
        """All points of a run (paged through), optionally of one key."""
        out: list[dict] = []
        after = -1
        while True:
            q = {"after_step": after, **({"key": key} if key else {}), **params}
            page = self.request("GET", f"/api/v1/runs/{int(run_id)}/metrics", params=q)
            out.extend(page["points"])
            if page.get("next_after_step") is None or "max_points" in params:
                return out
            after = page["next_after_step"]

    def logs(self, run_id: int, tail: int = 200) -> list[str]:
        """The last ``tail`` log lines."""
        page = self.request("GET", f"/api/v1/runs/{int(run_id)}/logs", params={"tail": tail})
        return [x["line"] for x in page["lines"]]

    def checkpoints(self, run_id: int) -> list[dict]:
        """The run's checkpoints with their files."""
        return self.request("GET", f"/api/v1/runs/{int(run_id)}/checkpoints")["checkpoints"]

    def confusion(self, run_id: int) -> list[dict]:
        """An image run's newest confusion matrix per stage: ``{stage, step, classes, matrix,
        t}`` (rows = true class), val first; empty for other runs."""
        return self.request("GET", f"/api/v1/runs/{int(run_id)}/confusion")["matrices"]

    def wait(self, run_id: int, timeout: float = 600.0, poll: float = 0.5) -> dict[str, Any]:
        """Polls until the run reaches a final state; returns it."""
        import time

        from glmx.platform.models import FINAL_STATES

        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state"] in FINAL_STATES:
                return run
            if time.monotonic() > deadline:
                raise PlatformError(f"run {run_id} still {run['state']} after {timeout:g} s")
            time.sleep(poll)

    # -- the rest -----------------------------------------------------------------------------
    def agents(self) -> list[dict]:
        """Registered agents."""
        return self.request("GET", "/api/v1/agents")["agents"]

    def projects(self) -> list[dict]:
        """Projects."""
        return self.request("GET", "/api/v1/projects")["projects"]

    def create_config(
        self,
        name: str,
        experiment: str,
        overrides: list[str] | None = None,
        project: str = "default",
    ) -> dict[str, Any]:
        """Stores a named config (the server composes it first)."""
        body = {
            "name": name,
            "experiment": experiment,
            "overrides": list(overrides or []),
            "project": project,
        }
        return self.request("POST", "/api/v1/configs", json=body)

    def health(self) -> dict[str, Any]:
        """Server version and database kind."""
        return self.request("GET", "/api/v1/health")
