"""Request bodies of the REST API (pydantic); responses are plain JSON objects."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AgentIn",
    "ConfigIn",
    "ExternalRunIn",
    "HeartbeatIn",
    "LogsIn",
    "MetricsIn",
    "ProjectIn",
    "RunIn",
    "StateIn",
]

_Strict = ConfigDict(extra="forbid")


class ProjectIn(BaseModel):
    """A new project."""

    model_config = _Strict
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\- ]+$")
    description: str = Field(default="", max_length=4000)


class ConfigIn(BaseModel):
    """A stored experiment definition (validated by composing it)."""

    model_config = _Strict
    project: str = "default"
    name: str = Field(min_length=1, max_length=128)
    experiment: str = Field(min_length=1, max_length=256)
    overrides: list[str] = Field(default_factory=list, max_length=200)


class RunIn(BaseModel):
    """A run to enqueue: a stored config, or an experiment plus overrides."""

    model_config = _Strict
    project: str = "default"
    config_id: int | None = None
    experiment: str | None = Field(default=None, max_length=256)
    overrides: list[str] = Field(default_factory=list, max_length=200)
    name: str = Field(default="", max_length=256)
    tags: list[str] = Field(default_factory=list, max_length=50)
    kind: Literal["train", "smoke"] = "train"
    priority: int = 0


class ExternalRunIn(BaseModel):
    """A run started outside the platform (``python -m glmx.train`` with the reporter)."""

    model_config = _Strict
    project: str = "default"
    name: str = Field(default="", max_length=256)
    experiment: str = Field(default="", max_length=256)
    overrides: list[str] = Field(default_factory=list, max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=50)
    run_dir: str = Field(default="", max_length=4096)
    host: str = Field(default="", max_length=256)


class Point(BaseModel):
    """One metric point."""

    model_config = _Strict
    key: str = Field(min_length=1, max_length=256)
    step: int
    value: float
    epoch: int | None = None
    t: float | None = None


class MetricsIn(BaseModel):
    """A batch of metric points (``attempt``: the claim they belong to)."""

    model_config = _Strict
    attempt: int | None = None
    points: list[Point] = Field(max_length=100_000)


class LogsIn(BaseModel):
    """A batch of log lines."""

    model_config = _Strict
    attempt: int | None = None
    lines: list[str] = Field(max_length=100_000)
    # The sequence number the sender expects its first line to get (the ``next_seq`` of its
    # last acknowledged batch): a batch re-sent after a lost reply is then stored once.
    first_seq: int | None = Field(default=None, ge=0)


class AgentIn(BaseModel):
    """An agent registering."""

    model_config = _Strict
    name: str = Field(default="", max_length=128)
    host: str = Field(default="", max_length=256)
    device: str = Field(default="cpu", max_length=64)
    gpu_name: str = Field(default="", max_length=256)
    gpu_memory_mb: int = 0


class HeartbeatIn(BaseModel):
    """An agent's heartbeat, with the run it is executing."""

    model_config = _Strict
    run_id: int | None = None
    attempt: int | None = None
    step: int | None = None


class StateIn(BaseModel):
    """A run's state reported by its agent (or by an external run's reporter)."""

    model_config = _Strict
    attempt: int | None = None
    state: Literal["queued", "running", "done", "failed", "cancelled", "preempted"]
    exit_code: int | None = None
    summary: dict = Field(default_factory=dict)
