"""`ExperimentTracker`: the training side of the experiment registry.

Rank 0 creates (or continues) the run record, appends ``started`` with host, GPU and SLURM
ids, keeps a heartbeat from a daemon thread, and appends ``ended`` with the final and best
metrics. A run stopped for a SLURM requeue is left ``preempted`` (see
:class:`glmx.cluster.SlurmRequeue`); an uncaught exception is recorded as ``failed``.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmx.tracking._meta import host_facts
from glmx.tracking.record import RunRecord, read_metrics
from glmx.trainer.callbacks import Callback

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.tracking")
RUN_DIR_ENV = "GLMX_RUN_DIR"


def _hydra_files(run_dir: Path) -> tuple[dict[str, Any] | None, list[str] | None]:
    """The config and overrides the Hydra-style runner saved in ``<run_dir>/.hydra/``."""
    hydra = run_dir / ".hydra"
    if not (hydra / "config.yaml").exists():
        return None, None
    import yaml

    config = yaml.safe_load((hydra / "config.yaml").read_text(encoding="utf-8")) or {}
    overrides = None
    if (hydra / "overrides.yaml").exists():
        overrides = [
            str(o)
            for o in yaml.safe_load((hydra / "overrides.yaml").read_text(encoding="utf-8")) or []
        ]
    return config, overrides


class ExperimentTracker(Callback):
    """Records the run in the experiment registry (``<run_dir>/glmx-run/``).

    Args:
        run_dir: the run directory; default ``$GLMX_RUN_DIR`` (set by ``glmx slurm submit`` and
            the Hydra-style runner), else the trainer's ``default_root_dir``.
        config: the config to store; default ``<run_dir>/.hydra/config.yaml`` when present.
        overrides: command-line overrides; default ``<run_dir>/.hydra/overrides.yaml``.
        name: a display name (default: the run directory's name).
        heartbeat_interval: seconds between heartbeats.
        seed: the run's seed (default: the trainer's, else the one ``seed_everything`` set).

    Final states: ``done``, ``failed`` (with the exception's one-line summary),
    ``interrupted`` (Ctrl-C), ``preempted`` (SLURM requeue); :meth:`record_exit` adds the
    process's exit code.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        config: dict[str, Any] | None = None,
        overrides: list[str] | None = None,
        name: str | None = None,
        heartbeat_interval: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.config, self.overrides, self.name = config, overrides, name
        self.heartbeat_interval = heartbeat_interval
        self.record: RunRecord | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open = False
        self._error: str | None = None
        self._step = 0
        self._ended = False

    def _resolve_dir(self, trainer: Trainer) -> Path:
        if self.run_dir is not None:
            return self.run_dir
        env = os.environ.get(RUN_DIR_ENV)
        return Path(env) if env else Path(trainer.default_root_dir)

    def setup(self, trainer: Trainer, pl_module: Module, stage: str) -> None:
        if stage != "fit" or trainer.global_rank != 0 or self.record is not None:
            return
        run_dir = self._resolve_dir(trainer)
        config, overrides = self.config, self.overrides
        if config is None or overrides is None:
            hydra_config, hydra_overrides = _hydra_files(run_dir)
            config = config if config is not None else hydra_config
            overrides = overrides if overrides is not None else hydra_overrides
        self.record = RunRecord.create(
            run_dir,
            config=config,
            overrides=overrides,
            seed=self._seed(trainer),
            command=sys.argv,
            name=self.name,
        )

    def _seed(self, trainer: Trainer) -> int | None:
        for value in (self.seed, trainer.seed, os.environ.get("PL_GLOBAL_SEED")):
            if value is not None and str(value).lstrip("-").isdigit():
                return int(value)
        return None

    def on_train_start(self, trainer: Trainer, pl_module: Module) -> None:
        if self.record is None:
            return
        facts = host_facts()
        previous = [e.get("gpu") for e in self.record.events() if e["event"] == "started"]
        if previous and previous[0] != facts["gpu"]:
            # Reproducibility: kernels, numerics and throughput differ between GPU models.
            log.warning(
                "run %s started on GPU %r and now resumes on %r: results may not be bit-identical",
                self.record.run_dir,
                previous[0],
                facts["gpu"],
            )
            facts["gpu_changed_from"] = previous[0]
        self.record.append("started", step=trainer.global_step, **facts)
        self.record.heartbeat()
        self._open = True
        self._step = trainer.global_step
        self._start_heartbeat()
        atexit.register(self._finish_at_exit)
        self._chain_excepthook()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step

    def on_exception(self, trainer: Trainer, pl_module: Module, exception: BaseException) -> None:
        # Recorded at once (teardown still runs after a failure and must not say `done`), also
        # for a failure before training started (set-up, sanity check).
        if self.record is None or self._ended:
            return
        status, error = failure_of(exception)
        self._error = error
        self.record.append("ended", status=status, step=trainer.global_step, error=error)
        self._ended = True
        self._close()

    def record_exit(self, exception: BaseException | None) -> None:
        """Append the process's outcome as an ``exit`` event (0; 2 for a glmx error, 1 for
        another exception, 130 for Ctrl-C, as ``python -m glmx.train`` exits), so
        a failure after training (testing, the optimized metric) is recorded too."""
        if self.record is None:
            return
        if exception is None:
            self.record.append("exit", rc=0)
            return
        status, error = failure_of(exception)
        if not self._ended:
            self.record.append("ended", status=status, step=self._step, error=error)
            self._ended = True
            self._close()
        from glmx.errors import GlmxError

        rc = 130 if status == "interrupted" else (2 if isinstance(exception, GlmxError) else 1)
        self.record.append("exit", rc=rc, error=error)

    def teardown(self, trainer: Trainer, pl_module: Module, stage: str) -> None:
        if stage != "fit" or self.record is None or not self._open:
            return
        if any(getattr(cb, "requeued", False) for cb in trainer.callbacks):
            self._ended = True
            self._close()  # SlurmRequeue appended `preempted`; the requeued job continues the record
            return
        final, best = read_metrics(self.record.run_dir)
        for name in trainer.callback_metrics:
            value = trainer.callback_metrics_float(name)
            if value is not None:
                final.setdefault(name, value)
        self.record.append("ended", status="done", step=trainer.global_step, final=final, best=best)
        self._ended = True
        self._close()

    # -- internals ---------------------------------------------------------------------------
    def _close(self) -> None:
        self._open = False
        self._stop.set()

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        record, interval = self.record, self.heartbeat_interval

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    record.heartbeat()  # type: ignore[union-attr]
                except OSError as exc:  # a full or vanished filesystem must not kill training
                    log.debug("heartbeat failed: %s", exc)

        self._thread = threading.Thread(target=beat, name="glmx-heartbeat", daemon=True)
        self._thread.start()

    def _chain_excepthook(self) -> None:
        previous = sys.excepthook

        def hook(exc_type: Any, exc: BaseException, tb: Any) -> None:
            self._error = f"{exc_type.__name__}: {exc}"
            previous(exc_type, exc, tb)

        sys.excepthook = hook

    def _finish_at_exit(self) -> None:
        if self._open and not self._ended and self.record is not None:
            error = self._error or "the process exited before training finished"
            self.record.append("ended", status="failed", step=self._step, error=error)
            self._ended = True
            self._close()

    def state_dict(self) -> dict[str, Any]:
        return {}


def failure_of(exception: BaseException) -> tuple[str, str]:
    """``(status, one-line summary)`` of the exception that ended a run."""
    if isinstance(exception, KeyboardInterrupt):
        return "interrupted", "interrupted (KeyboardInterrupt)"
    text = str(exception).strip().splitlines()
    line = text[0] if text else ""
    if len(line) > 300:
        line = line[:297] + "..."
    return "failed", f"{type(exception).__name__}: {line}" if line else type(exception).__name__
