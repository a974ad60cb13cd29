"""The platform's tables (SQLAlchemy 2). The schema is created by the Alembic migrations in
``glmx/platform/migrations``; a change here needs a new migration there.

Times are UNIX seconds (float): portable across SQLite and PostgreSQL and cheap to compare.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "RUN_STATES",
    "Agent",
    "Base",
    "ConfigRow",
    "LogLine",
    "Metric",
    "Project",
    "Run",
    "RunArtifact",
]

RUN_STATES = ("queued", "claimed", "running", "done", "failed", "cancelled", "preempted")
ACTIVE_STATES = ("claimed", "running")
FINAL_STATES = ("done", "failed", "cancelled", "preempted")


class Base(DeclarativeBase):
    """Declarative base of the platform's tables."""


class Project(Base):
    """A named group of configs and runs."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[float] = mapped_column(Float)


class ConfigRow(Base):
    """A stored, editable experiment definition: an experiment name plus overrides."""

    __tablename__ = "configs"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(128))
    experiment: Mapped[str] = mapped_column(String(256))
    overrides: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)


class Run(Base):
    """A config launched: queue entry, state, agent, timestamps and exit summary."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_state_priority", "state", "priority", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    config_id: Mapped[int | None] = mapped_column(ForeignKey("configs.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    kind: Mapped[str] = mapped_column(String(32), default="train")
    experiment: Mapped[str] = mapped_column(String(256), default="")
    overrides: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    external: Mapped[int] = mapped_column(Integer, default=0)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    pending_action: Mapped[str | None] = mapped_column(String(16), nullable=True)
    run_dir: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[float] = mapped_column(Float)
    claimed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_step: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    final_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Metric(Base):
    """One point of a run's time series; (run, key, step) is unique (a resumed run re-reports
    the steps after its checkpoint and overwrites them)."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "key", "step", name="uq_metric_point"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    key: Mapped[str] = mapped_column(String(256))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timestamp: Mapped[float] = mapped_column(Float)


class LogLine(Base):
    """One line of a run's output, numbered per run (``seq``) so tails can page."""

    __tablename__ = "log_lines"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_log_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    line: Mapped[str] = mapped_column(Text)


class RunArtifact(Base):
    """A structured result a run reports besides its metric series, the newest per
    (run, kind, name): e.g. kind ``confusion``, name the stage (``val``, ``test``)."""

    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "kind", "name", name="uq_run_artifact"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated: Mapped[float] = mapped_column(Float)


class Agent(Base):
    """A training agent: one device (a GPU or the CPU) on one host."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(256))
    device: Mapped[str] = mapped_column(String(64))
    gpu_name: Mapped[str] = mapped_column(String(256), default="")
    gpu_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="idle")
    last_heartbeat: Mapped[float] = mapped_column(Float)
    current_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[float] = mapped_column(Float)
