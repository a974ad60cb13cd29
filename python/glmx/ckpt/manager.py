"""``CheckpointManager``: the Python face of the Rust checkpoint coordinator."""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import re
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from glmx import _glmx
from glmx.ckpt._mmap import read_mapped
from glmx.ckpt._nested import flatten_state, unflatten_state
from glmx.errors import CheckpointError

__all__ = ["CheckpointInfo", "CheckpointManager", "SHARING_PATTERNS", "launch_session"]

SHARING_PATTERNS = ("GLOBAL", "REPLICATED", "PER_RANK", "PER_GROUP", "PER_NODE")
#: Components that default to PER_RANK; everything else defaults to GLOBAL.
_PER_RANK_DEFAULT = ("rng",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FORMAT = "glmx.nested/1"


@dataclass(frozen=True)
class CheckpointInfo:
    """A committed checkpoint as listed by :meth:`CheckpointManager.list`."""

    step: int
    path: Path
    timestamp: str
    metrics: dict[str, Any] = field(default_factory=dict)
    components: tuple[str, ...] = ()
    size: int = 0


def _metric_value(name: str, value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no inf/nan; a non-finite metric never counts as best
    if value is not None and not isinstance(value, (int, float, str, bool)):
        raise CheckpointError(
            f"metric '{name}' has type {type(value).__name__}; pass numbers or strings"
        )
    return value


_SESSION_VARS = (
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "SLURM_JOB_ID",
    "SLURM_RESTART_COUNT",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def launch_session() -> str:
    """An id of this launch that every rank computes alike from the launcher's environment
    (torchrun's run id and restart count, SLURM's job id and restart count, the rendezvous
    address); empty when none of them is set (a single process)."""
    parts = [f"{k}={os.environ[k]}" for k in _SESSION_VARS if k in os.environ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16] if parts else ""


def _wait_quietly(ref: weakref.ref) -> None:
    manager = ref()
    if manager is not None:
        try:
            manager.wait()
        except CheckpointError as err:  # interpreter exit: report, do not raise
            warnings.warn(f"checkpoint save did not complete: {err}", stacklevel=1)


class CheckpointManager:
    """Crash-safe, asynchronous, pickle-free checkpoints of one training run.

    Checkpoints live in ``<run_dir>/checkpoints/checkpoint-<step>/``: ``model.safetensors``
    (HF-style shards plus ``model.safetensors.index.json`` above ``max_shard_size`` bytes), one
    ``<component>.safetensors`` per component (``<component>_rank<r>`` for ``PER_RANK``) and
    ``checkpoint_manifest.json`` with sizes and checksums. ``checkpoints/latest`` names the
    newest committed one. A ``kill -9`` at any moment leaves the previous checkpoint intact.

    Args:
        run_dir: The run's output directory.
        save_total_limit: Keep at most this many checkpoints (kept-best ones come on top; the
            newest is never deleted). ``None`` keeps all.
        keep_best: Also keep the best ``keep_best`` checkpoints by ``monitor``.
        monitor: Metric name (from ``metrics`` passed to :meth:`save`) for best-k and
            ``load("best")``.
        mode: ``"min"`` or ``"max"``: whether lower or higher ``monitor`` is better.
        async_save: :meth:`save` returns after copying tensors into reusable host buffers; a
            background thread writes and commits. A failure is raised by the next
            :meth:`save` or :meth:`wait`.
        world_size, rank: Distributed layout. Every rank calls :meth:`save` with the same step;
            rank 0 writes GLOBAL/REPLICATED components and commits, each rank its PER_RANK ones.
            The run directory must be on a file system all ranks share.
        local_world_size: Ranks per node (PER_NODE files are written by local rank 0).
        group_size: Ranks per group (PER_GROUP files are written by each group's first rank).
        max_shard_size: Model weights above this many bytes are sharded (default 5 GB, as HF).
        validate_replicated: Ranks > 0 checksum their REPLICATED components and rank 0 fails
            the save when a replica differs (catches DDP desynchronisation).
        barrier_timeout: Seconds rank 0 waits for the other ranks' files (finite, >= 0).
        session: Identifies this launch, equal on every rank; rank 0 never commits a part a
            rank wrote in another session (an interrupted launch). Default: derived from the
            launcher's environment (see :func:`launch_session`).

    Invalid arguments (``rank=-1``, ``save_total_limit=-1``, ``barrier_timeout=nan``) raise
    :class:`glmx.CheckpointError` naming the argument.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        save_total_limit: int | None = None,
        keep_best: int = 0,
        monitor: str | None = None,
        mode: str = "min",
        async_save: bool = True,
        world_size: int = 1,
        rank: int = 0,
        local_world_size: int | None = None,
        group_size: int | None = None,
        max_shard_size: int = 5_000_000_000,
        validate_replicated: bool = False,
        barrier_timeout: float = 600.0,
        session: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.async_save = async_save
        self.world_size = world_size
        self.rank = rank
        self.monitor = monitor
        self._native = _glmx.CheckpointCoordinator(
            str(self.run_dir),
            world_size=world_size,
            rank=rank,
            local_world_size=local_world_size,
            group_size=group_size,
            save_total_limit=save_total_limit,
            keep_best=keep_best,
            monitor=monitor,
            mode=mode,
            max_shard_size=max_shard_size,
            barrier_timeout_s=barrier_timeout,
            torch_version=torch.__version__,
            validate_replicated=validate_replicated,
            session=launch_session() if session is None else str(session),
        )
        # A script that ends right after an async save still gets its checkpoint committed.
        atexit.register(_wait_quietly, weakref.ref(self))

    @property
    def checkpoint_dir(self) -> Path:
        """``<run_dir>/checkpoints``."""
        return self.run_dir / "checkpoints"

    def save(
        self,
        step: int,
        model_state: Mapping[str, torch.Tensor] | torch.nn.Module,
        components: Mapping[str, Any] | None = None,
        sharing: Mapping[str, str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        async_save: bool | None = None,
    ) -> Path:
        """Save checkpoint ``step`` and return its (final) directory.

        Args:
            step: Global step; names the directory ``checkpoint-<step>``.
            model_state: ``model.state_dict()`` (or the module itself): name -> tensor.
            components: Name -> nested state, e.g. ``{"optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "trainer": {"step": 10}, "rng": rng_state()}``.
                Values may nest dicts, lists, tuples, tensors, numpy arrays, numbers, strings
                and None; anything else is an error (nothing is pickled).
            sharing: Name -> one of ``SHARING_PATTERNS``; ``rng`` defaults to ``PER_RANK``,
                everything else to ``GLOBAL``.
            metrics: Recorded in the manifest; ``monitor`` must be among them when best-k
                retention is on.
            metadata: Name -> JSON-able dict recorded in the manifest for that component.
            async_save: Override the manager's default for this call.

        With asynchronous saving this blocks only while tensors are copied; the directory exists
        once :meth:`wait` returns (or the next save starts).
        """
        if isinstance(model_state, torch.nn.Module):
            model_state = model_state.state_dict()
        model = []
        for name, value in model_state.items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(
                    f"model_state['{name}'] is a {type(value).__name__}, not a tensor"
                )
            model.append((name, value))
        sharing = dict(sharing or {})
        metadata = dict(metadata or {})
        unknown = set(sharing) - set(components or {})
        if unknown:
            raise CheckpointError(
                f"sharing names components that were not passed: {sorted(unknown)}"
            )
        native_components = []
        for name, state in (components or {}).items():
            if not _NAME.match(name) or name == "model":
                raise CheckpointError(
                    f"invalid component name '{name}': use letters, digits, '_', '.', '-' "
                    "(and not 'model')"
                )
            pattern = sharing.get(
                name, "PER_RANK" if name in _PER_RANK_DEFAULT else "GLOBAL"
            ).upper()
            if pattern not in SHARING_PATTERNS:
                raise CheckpointError(
                    f"sharing of '{name}' is '{pattern}'; expected one of {SHARING_PATTERNS}"
                )
            structure, tensors = flatten_state(state)
            file_meta = {
                "glmx.format": _FORMAT,
                "glmx.component": name,
                "glmx.structure": structure,
            }
            info = {"type": type(state).__name__, **dict(metadata.get(name, {}))}
            native_components.append((name, pattern, tensors, file_meta, json.dumps(info)))
        metric_values = {k: _metric_value(k, v) for k, v in (metrics or {}).items()}
        use_async = self.async_save if async_save is None else async_save
        # step is validated by the native side (CheckpointError for -1, 2**64, 1.5, ...)
        path = self._native.save(
            step, model, native_components, json.dumps(metric_values), use_async
        )
        return Path(path)

    def wait(self) -> Path | None:
        """Block until the background save is committed; return its directory (None if none
        was pending). Raises :class:`glmx.CheckpointError` if it failed."""
        done = self._native.wait()
        return Path(done) if done is not None else None

    close = wait

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()

    @property
    def busy(self) -> bool:
        """Whether a background save is still writing."""
        return self._native.busy()

    def resolve(self, which: str | Path = "last") -> Path:
        """Directory of ``"last"`` (the ``latest`` pointer), ``"best"`` (by ``monitor``) or a
        path (absolute, relative, or a ``checkpoint-<step>`` name). Only committed checkpoints
        resolve; raises :class:`glmx.CheckpointError` otherwise."""
        return Path(self._native.resolve(str(which)))

    def list(self) -> list[CheckpointInfo]:
        """Committed checkpoints, oldest first."""
        out = []
        for item in json.loads(self._native.list()):
            m = item["manifest"]
            comps = m["components"]
            out.append(
                CheckpointInfo(
                    step=m["step"],
                    path=Path(item["dir"]),
                    timestamp=m["timestamp"],
                    metrics=m.get("metrics", {}),
                    components=tuple(comps),
                    size=sum(c["size"] for c in comps.values()),
                )
            )
        return out

    def manifest(self, which: str | Path = "last") -> dict[str, Any]:
        """The parsed ``checkpoint_manifest.json`` of a checkpoint."""
        path = self.resolve(which) / "checkpoint_manifest.json"
        return json.loads(path.read_text())

    def load(
        self,
        which: str | Path = "last",
        map_location: Any = "cpu",
        components: list[str] | None = None,
        verify: bool = True,
    ) -> dict[str, Any]:
        """Read a committed checkpoint; nothing is unpickled or executed.

        Args:
            which: ``"last"``, ``"best"`` or a path (see :meth:`resolve`).
            map_location: Device for the returned tensors.
            components: Names to read (the model is always read); ``None`` reads all.
                ``[]`` reads only the weights (and skips the world-size check).
            verify: Check every file's size and checksum against the manifest.

        CPU tensors share a private copy-on-write memory map of the files (no copy; writing to
        them never alters the checkpoint, which may be deleted while they are in use).

        Returns:
            ``{"path", "step", "manifest", "model": {name: tensor}, "components": {name:
            nested state}}``; PER_RANK components are this rank's. Optional components that
            are missing are skipped with a warning; missing weights or a different world size
            (with per-rank state requested) raise :class:`glmx.CheckpointError`.
        """
        plan = self._native.plan(str(which), components)
        to_device = map_location not in (None, "cpu") and torch.device(map_location).type != "cpu"
        model: dict[str, torch.Tensor] = {}
        loaded: dict[str, Any] = {}
        for name, _sharing, path, size, checksum, _info in plan["files"]:
            if not path.endswith(".safetensors"):
                if verify and tuple(_glmx.checksum_file(path)) != (size, checksum):
                    raise CheckpointError(
                        f"checkpoint file '{path}' is corrupt: "
                        "size/checksum differ from the manifest"
                    )
                continue
            tensors, file_meta = read_mapped(
                path, size if verify else None, checksum if verify else None
            )
            if name == "model":
                model.update(
                    {n: (t.to(map_location) if to_device else t) for n, t in tensors.items()}
                )
                continue
            structure = file_meta.get("glmx.structure")
            if structure is None:
                raise CheckpointError(
                    f"component '{name}' in {plan['dir']} has no glmx.structure metadata"
                )
            loaded[name] = unflatten_state(structure, tensors, map_location if to_device else None)
        for name in plan["skipped"]:
            warnings.warn(
                f"checkpoint {plan['dir']}: optional component '{name}' is missing; skipped",
                stacklevel=2,
            )
        raw = plan
        manifest = json.loads(raw["manifest"])
        return {
            "path": Path(raw["dir"]),
            "step": manifest["step"],
            "manifest": manifest,
            "model": model,
            "components": loaded,
        }
