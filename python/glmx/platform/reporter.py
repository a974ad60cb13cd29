"""``PlatformReporter``: a training started outside the platform (a SLURM job, a laptop run)
shows up on the platform's dashboard with its metrics, logs-free, and its final state.

    python -m glmx.train experiment=tiny_cpu platform.url=http://127.0.0.1:8000

The token comes from ``token=`` or ``$GLMX_PLATFORM_TOKEN``. Network trouble never stops the
training: points wait in memory (up to ``max_buffer``) and are sent when the server answers.
An image run's confusion matrices (``<log_dir>/confusion/*.json``) go too, the newest per stage
(those of a test after the fit are not: the run is reported finished at the end of the fit).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from glmx.trainer.callbacks import Callback
from glmx.trainer.loggers import Logger

__all__ = ["PlatformReporter"]

log = logging.getLogger("glmx.platform.reporter")


class _Forward(Logger):
    """Receives the trainer's metric records and hands them to the reporter."""

    def __init__(self, reporter: PlatformReporter) -> None:
        super().__init__(None)
        self.reporter = reporter

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        self.reporter.add(metrics, step, epoch)


class PlatformReporter(Callback):
    """Reports this fit to a platform server as an external run.

    Args:
        url: server URL (default ``$GLMX_PLATFORM_URL``).
        token: API token (default ``$GLMX_PLATFORM_TOKEN``).
        project: project name on the server.
        name: run name (default: the experiment, else the run directory's name).
        tags: run tags.
        flush_s: seconds between sends.
        max_buffer: points kept while the server is unreachable (oldest dropped beyond).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        project: str = "default",
        name: str = "",
        tags: list[str] | None = None,
        flush_s: float = 2.0,
        max_buffer: int = 1_000_000,
    ) -> None:
        from glmx.platform.client import Client, default_token
        from glmx.platform.settings import URL_ENV, PlatformError

        url = url or os.environ.get(URL_ENV)
        if not url:
            raise PlatformError(f"PlatformReporter needs url= or ${URL_ENV}")
        self.client = Client(url, token or default_token(), timeout=10.0)
        self.project, self.name, self.tags = project, name, list(tags or [])
        self.flush_s, self.max_buffer = flush_s, max_buffer
        self.run_id: int | None = None
        self._points: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._body: dict[str, Any] = {}
        self._confusion: Any = None
        self._matrices: list[dict[str, Any]] = []
        self._warned = False

    def add(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        """Buffers one record's numeric values."""
        now = time.time()
        with self._lock:
            for key, value in metrics.items():
                try:
                    v = float(value)
                except (TypeError, ValueError):
                    continue
                if v == v and abs(v) != float("inf"):
                    self._points.append(
                        {"key": key, "step": int(step), "value": v, "epoch": epoch, "t": now}
                    )
            if len(self._points) > self.max_buffer:
                del self._points[: len(self._points) - self.max_buffer]

    def _send(self, final: bool = False) -> None:
        if self.run_id is None:
            return
        with self._lock:
            batch, self._points = self._points, []
        if batch:
            try:
                self.client.request(
                    "POST", f"/api/v1/runs/{self.run_id}/metrics", json={"points": batch}
                )
            except Exception as err:  # keep training; try again later
                log.warning("platform: metrics not sent (%s); will retry", err)
                with self._lock:
                    self._points = batch + self._points
                return
        self._send_confusion(final)

    def _send_confusion(self, final: bool) -> None:
        from glmx.platform.client import APIError

        if self._confusion is None:
            return
        new = self._confusion.poll(force=final)
        stages = {m["stage"] for m in new}
        self._matrices = [m for m in self._matrices if m["stage"] not in stages] + new
        while self._matrices:
            try:
                self.client.request(
                    "POST", f"/api/v1/runs/{self.run_id}/confusion", json=self._matrices[0]
                )
            except APIError as err:
                if err.status >= 500:
                    log.warning("platform: confusion matrix not sent (%s); will retry", err)
                    return
                # refused (too many classes, a finished run): not sent again
                log.warning("platform: confusion matrix refused (%s)", err)
            except Exception as err:
                log.warning("platform: confusion matrix not sent (%s); will retry", err)
                return
            self._matrices.pop(0)

    def _register(self) -> None:
        try:
            run = self.client.request("POST", "/api/v1/runs/external", json=self._body)
            self.run_id = int(run["id"])
            log.info("platform: reporting as run %d to %s", self.run_id, self.client.url)
        except Exception as err:
            if not self._warned:
                log.warning("platform: run not registered yet (%s); training continues", err)
                self._warned = True

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            if self.run_id is None:
                self._register()
            self._send()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        run_dir = Path(trainer.default_root_dir).resolve()
        overrides = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        experiment = next(
            (o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), ""
        )
        self._body = {
            "project": self.project,
            "name": self.name or experiment or run_dir.name,
            "experiment": experiment,
            "overrides": overrides,
            "tags": self.tags,
            "run_dir": str(run_dir),
            "host": socket.gethostname(),
        }
        from glmx.platform.confusion import ConfusionWatcher

        self._confusion = ConfusionWatcher(Path(trainer.log_dir))
        self._register()
        trainer.loggers.append(_Forward(self))
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _finish(self, state: str) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        if self.run_id is None:
            self._register()
        if self.run_id is None:
            return
        self._send(final=True)
        try:
            self.client.request("POST", f"/api/v1/runs/{self.run_id}/state", json={"state": state})
        except Exception as err:
            log.warning("platform: final state not sent (%s)", err)
        self.run_id = None

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish("done")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._finish("cancelled" if isinstance(exception, KeyboardInterrupt) else "failed")
