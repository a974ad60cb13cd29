"""The per-run record: append-only files in ``<run_dir>/glmx-run/``, one writer per run.

Files:
    events.jsonl   one JSON object per line: created, submitted, started, preempted, ended, exit
    config.json    the composed config (written once, when the record is created)
    git.diff       ``git diff HEAD`` at creation (the SHA and dirty flag are in the created event)
    heartbeat      the time of the last heartbeat (rewritten atomically by the running job)

The status is a fold over the events plus the heartbeat's age, so nothing is ever rewritten
in place and a reader never sees a half-updated record; a line cut by a crash is skipped.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
import time
import warnings
from pathlib import Path
from typing import Any

RECORD_DIR = "glmx-run"
EVENTS_FILE = "events.jsonl"
# Larger files (or FIFOs, devices) are skipped with a warning: reading them could hang or
# exhaust memory.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_EVENTS_BYTES = 64 * 1024 * 1024
MAX_LOG_BYTES = 1024 * 1024 * 1024
HEARTBEAT_FILE = "heartbeat"
STATUSES = (
    "created",
    "queued",
    "running",
    "done",
    "failed",
    "interrupted",
    "preempted",
    "dead",
)
# A running job rewrites its heartbeat every 30 s; five missed beats mean it is gone.
DEAD_AFTER_S = 300.0
_MIN_WORDS = ("loss", "perplexity", "ppl", "error", "mse", "mae")
_MAX_WORDS = (
    "acc",
    "auroc",
    "auprc",
    "auc",
    "f1",
    "precision",
    "recall",
    "r2",
    "spearman",
    "pearson",
)


def read_regular(path: Path, limit: int) -> bytes | None:
    """Contents of ``path`` if it is a regular file of at most ``limit`` bytes, else None
    (with a warning unless it is missing). Opened non-blocking: a FIFO never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        warnings.warn(f"{path}: cannot read ({err.strerror}); skipped", stacklevel=3)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            warnings.warn(f"{path}: not a regular file; skipped", stacklevel=3)
            return None
        if st.st_size > limit:
            warnings.warn(f"{path}: {st.st_size} bytes exceeds {limit}; skipped", stacklevel=3)
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def new_run_id() -> str:
    """A sortable, collision-resistant id: ``<YYYYmmdd-HHMMSS>-<6 hex>``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def metric_mode(name: str) -> str | None:
    """``"min"`` or ``"max"`` when the name says which is better, else ``None``."""
    low = name.lower()
    if low.startswith(("perf/", "lr-", "epoch", "global_step", "timestamp")):
        return None
    if any(w in low for w in _MIN_WORDS):
        return "min"
    if any(w in low for w in _MAX_WORDS):
        return "max"
    return None


def read_metrics(
    run_dir: str | os.PathLike[str],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``(final, best)`` from ``<run_dir>/trainer_logs.json``; tolerates a record cut mid-line.

    ``final`` maps each metric to its last value; ``best`` maps metrics whose name says which
    direction is better (loss: min, accuracy: max) to ``{"value", "step"}``.
    """
    path = Path(run_dir) / "trainer_logs.json"
    final: dict[str, float] = {}
    best: dict[str, dict[str, float]] = {}
    raw = read_regular(path, MAX_LOG_BYTES)
    if raw is None:
        return final, best
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = rec.get("global_step", 0)
        for key, value in rec.items():
            if key in ("timestamp", "global_step", "epoch") or not isinstance(value, (int, float)):
                continue
            value = float(value)
            final[key] = value
            mode = metric_mode(key)
            if mode is None or not math.isfinite(value):
                continue
            old = best.get(key)
            if old is None or (value < old["value"] if mode == "min" else value > old["value"]):
                best[key] = {"value": value, "step": step}
    return final, best


class RunRecord:
    """The record of one run in ``<run_dir>/glmx-run/``.

    Only the process that owns the run appends (the submitter before the job starts, then the
    job itself); appends are single ``write`` calls on an ``O_APPEND`` descriptor.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.dir = self.run_dir / RECORD_DIR

    @property
    def events_path(self) -> Path:
        """``<run_dir>/glmx-run/events.jsonl``."""
        return self.dir / EVENTS_FILE

    def exists(self) -> bool:
        """Whether a record was created for this run directory."""
        return self.events_path.exists()

    @classmethod
    def create(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        config: dict[str, Any] | None = None,
        overrides: list[str] | None = None,
        seed: int | None = None,
        command: list[str] | None = None,
        name: str | None = None,
        git_cwd: str | os.PathLike[str] = ".",
        run_id: str | None = None,
    ) -> RunRecord:
        """Create the record (config, git state and diff, package versions); returns it.

        An existing record is kept as is (a requeued job or a resumed run continues it).
        """
        from glmx.tracking._meta import git_state, package_versions

        rec = cls(run_dir)
        if rec.exists():
            return rec
        rec.dir.mkdir(parents=True, exist_ok=True)
        git = git_state(git_cwd)
        (rec.dir / "git.diff").write_text(git.pop("diff"), encoding="utf-8")
        (rec.dir / "config.json").write_text(
            json.dumps(config or {}, indent=1, default=str), encoding="utf-8"
        )
        rec.append(
            "created",
            id=run_id or new_run_id(),
            name=name or rec.run_dir.name,
            overrides=list(overrides or []),
            seed=seed,
            command=command,
            git=git,
            packages=package_versions(),
            cwd=os.getcwd(),
        )
        return rec

    def append(self, event: str, **fields: Any) -> None:
        """Append one event line (``time`` is added)."""
        line = json.dumps({"event": event, "time": time.time(), **fields}, default=str) + "\n"
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def heartbeat(self, now: float | None = None) -> None:
        """Record that the run is alive (atomic replace, so readers never see it empty)."""
        tmp = self.dir / f".{HEARTBEAT_FILE}.{os.getpid()}"
        tmp.write_text(f"{time.time() if now is None else now:.3f}\n", encoding="utf-8")
        os.replace(tmp, self.dir / HEARTBEAT_FILE)

    def last_heartbeat(self) -> float | None:
        """Time of the last heartbeat, ``None`` if there was none."""
        raw = read_regular(self.dir / HEARTBEAT_FILE, 4096)
        try:
            return float(raw.decode("utf-8", errors="replace").strip()) if raw else None
        except ValueError:
            return None

    def events(self) -> list[dict[str, Any]]:
        """All events in order; a line cut by a crash is skipped."""
        raw = read_regular(self.events_path, MAX_EVENTS_BYTES) if self.exists() else None
        if raw is None:
            return []
        out = []
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "event" in event:
                out.append(event)
        return out

    def config(self) -> dict[str, Any]:
        """The config stored at creation (``{}`` when none was given)."""
        raw = read_regular(self.dir / "config.json", MAX_CONFIG_BYTES)
        try:
            cfg = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return cfg if isinstance(cfg, dict) else {}

    def summary(self, now: float | None = None, dead_after: float = DEAD_AFTER_S) -> dict[str, Any]:
        """The run's current state folded from its events, heartbeat and training log."""
        return fold(self.events(), self.run_dir, self.last_heartbeat(), now, dead_after)


def fold(
    events: list[dict[str, Any]],
    run_dir: Path,
    heartbeat: float | None,
    now: float | None = None,
    dead_after: float = DEAD_AFTER_S,
) -> dict[str, Any]:
    """Fold events into one summary dict (see :meth:`RunRecord.summary`)."""
    s: dict[str, Any] = {
        "id": None,
        "name": run_dir.name,
        "run_dir": str(run_dir),
        "status": "created",
        "created": None,
        "started": None,
        "ended": None,
        "job_id": None,
        "array_job_id": None,
        "array_task_id": None,
        "hostname": None,
        "gpu": None,
        "git_sha": None,
        "git_dirty": None,
        "seed": None,
        "overrides": [],
        "restarts": 0,
        "exit_code": None,
        "error": None,
        "packages": {},
        "heartbeat": heartbeat,
        "preemptions": 0,
        "last_step": None,
        "warnings": [],
    }
    for ev in events:
        kind = ev["event"]
        if kind == "created":
            git = ev.get("git") or {}
            s.update(
                id=ev.get("id"),
                name=ev.get("name") or s["name"],
                created=ev.get("time"),
                overrides=ev.get("overrides") or [],
                seed=ev.get("seed"),
                git_sha=git.get("sha"),
                git_dirty=git.get("dirty"),
                packages=ev.get("packages") or {},
            )
        elif kind == "submitted":
            s.update(
                job_id=ev.get("job_id"),
                array_job_id=ev.get("array_job_id"),
                array_task_id=ev.get("array_task_id"),
            )
            if s["status"] == "created":
                s["status"] = "queued"
        elif kind == "started":
            slurm = ev.get("slurm") or {}
            s["started"] = s["started"] or ev.get("time")
            s.update(
                status="running",
                hostname=ev.get("hostname"),
                gpu=ev.get("gpu"),
                ended=None,
                exit_code=None,
            )
            s["restarts"] = int(slurm.get("restart_count", s["restarts"]))
            for key in ("job_id", "array_job_id", "array_task_id"):
                s[key] = slurm.get(key) or s[key]
            if ev.get("gpu_changed_from"):
                s["warnings"].append(
                    f"GPU changed from {ev['gpu_changed_from']} to {ev.get('gpu')}"
                )
        elif kind == "preempted":
            s.update(status="preempted", last_step=ev.get("step", s["last_step"]))
            s["preemptions"] += 1
        elif kind == "ended":
            s.update(
                status=ev.get("status", "done"),
                ended=ev.get("time"),
                error=ev.get("error"),
                last_step=ev.get("step", s["last_step"]),
            )
        elif kind == "exit":
            rc = ev.get("rc")
            s["exit_code"] = rc
            if s["status"] in ("running", "queued", "created") or (
                s["status"] == "done" and rc not in (0, None)
            ):
                # the process outlived training and failed later (e.g. testing), or died
                # without an `ended` event
                s["status"] = "done" if rc == 0 else ("interrupted" if rc == 130 else "failed")
                s["ended"] = ev.get("time")
                s["error"] = ev.get("error") or s["error"]
    if s["status"] == "running" and heartbeat is not None:
        if (time.time() if now is None else now) - heartbeat > dead_after:
            s["status"] = "dead"
    final, best = read_metrics(run_dir)
    s["final_metrics"], s["best_metrics"] = final, best
    return s
