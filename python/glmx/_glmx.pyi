"""Type stubs for ``glmx._glmx``: data loader, checkpoints and training loop (links libtorch).

The exception classes live in ``glmx._config`` (this module raises them but does not export
them). Checked against the built extension with
``python -m mypy.stubtest glmx._config glmx._glmx`` (tests/test_stubs.py).
"""

import os
from collections.abc import Sequence
from types import ModuleType
from typing import TypeAlias, TypedDict, final, type_check_only

import torch
from typing_extensions import Buffer, Self

__all__ = [
    "__version__",
    "torch_version_built",
    "CheckpointCoordinator",
    "write_safetensors",
    "checksum_buffer",
    "checksum_file",
    "read_safetensors",
    "NativeDnaLoader",
    "NativeImageLoader",
    "_HostPixels",
    "decode_image",
    "set_log_level",
    "drain_logs",
    "dropped_log_records",
    "_testing",
]

__version__: str
"""Version of the glmx crates this extension was built from."""

torch_version_built: str
"""The libtorch version this extension was compiled against."""

_StrPath: TypeAlias = str | os.PathLike[str]
_Named: TypeAlias = Sequence[tuple[str, torch.Tensor]]
"""Named tensors as ``[(name, tensor)]``."""

# --- logging (glmx-pylog; this extension has its own queue) ------------------------------------

def set_log_level(level: int) -> None:
    """Sets the lowest Python logging level (0-255) forwarded from Rust."""

def drain_logs() -> list[tuple[int, str, str]]:
    """Takes every queued record without blocking: a list of ``(level, logger_name, message)``."""

def dropped_log_records() -> int:
    """Number of records dropped because the queue was full."""

# --- checkpoints -------------------------------------------------------------------------------

_ComponentIn: TypeAlias = tuple[str, str, _Named, dict[str, str], str]
"""``(name, sharing, tensors, file metadata, manifest info as JSON)`` of one saved component."""
_ComponentOut: TypeAlias = tuple[str, str, list[tuple[str, torch.Tensor]], dict[str, str], str]
"""``(name, sharing, tensors, file metadata, info JSON)`` of one loaded component."""

@type_check_only
class _Plan(TypedDict):
    """What ``CheckpointCoordinator.plan`` returns."""

    dir: str
    manifest: str
    files: list[tuple[str, str, str, int, str, str]]
    """``(component, sharing, path, size, checksum, info JSON)`` per file."""
    skipped: list[str]

@type_check_only
class _Loaded(TypedDict):
    """What ``CheckpointCoordinator.load`` returns."""

    dir: str
    manifest: str
    model: list[tuple[str, torch.Tensor]]
    components: list[_ComponentOut]
    skipped: list[str]

@final
class CheckpointCoordinator:
    """The Rust checkpoint coordinator of one rank (use ``glmx.ckpt.CheckpointManager``)."""

    def __new__(
        cls,
        run_dir: _StrPath,
        *,
        world_size: int | None = None,
        rank: int | None = None,
        local_world_size: int | None = None,
        group_size: int | None = None,
        save_total_limit: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        max_shard_size: int | None = None,
        barrier_timeout_s: float | None = None,
        torch_version: str = ...,
        validate_replicated: bool = False,
        session: str = ...,
    ) -> Self:
        """Opens the coordinator for ``run_dir``; ``mode`` is ``"min"`` or ``"max"``; ``torch_version``
        (recorded in manifests) and ``session`` default to empty. ``None`` means the default
        (world size 1, rank 0, keep_best 0, 5 GB shards, 600 s barrier); every number is
        validated (``CheckpointError`` naming it)."""

    def save(
        self,
        step: int,
        model: _Named,
        components: Sequence[_ComponentIn],
        metrics_json: str,
        async_save: bool,
    ) -> str:
        """Saves checkpoint ``step``; returns its final directory."""

    def wait(self) -> str | None:
        """Waits for the background save; returns its directory or None; raises its error."""

    def busy(self) -> bool:
        """Whether a background save is running."""

    @property
    def buffer_bytes(self) -> int:
        """Bytes held by the reusable host buffers."""

    def resolve(self, which: str) -> str:
        """Directory of ``"last"``, ``"best"`` or a path."""

    def list(self) -> str:
        """Committed checkpoints, oldest first, as a JSON list of ``{"dir", "manifest"}``."""

    def plan(self, which: str, components: Sequence[str] | None = None) -> _Plan:
        """Resolves and checks a load without reading tensors."""

    def load(
        self, which: str, components: Sequence[str] | None = None, verify: bool = True
    ) -> _Loaded:
        """Reads a checkpoint (all components, or only those named)."""

def checksum_buffer(data: Buffer) -> str:
    """crc32 of a contiguous buffer, formatted as in manifests (runs without the GIL)."""

def checksum_file(path: _StrPath) -> tuple[int, str]:
    """``(size, checksum)`` of a file on disk."""

def write_safetensors(
    path: _StrPath, tensors: _Named, metadata: dict[str, str] | None = None
) -> tuple[int, str]:
    """Writes named tensors to a safetensors file (fsynced); returns ``(size, checksum)``."""

def read_safetensors(path: _StrPath) -> tuple[list[tuple[str, torch.Tensor]], dict[str, str]]:
    """Reads a safetensors file fully; returns ``([(name, tensor)], metadata)``."""

# --- data --------------------------------------------------------------------------------------

@final
class NativeDnaLoader:
    """Native batch stream of one rank; use ``glmx.data.DnaMlmLoader``, which wraps it."""

    def __new__(
        cls,
        paths: Sequence[str],
        *,
        seq_len: int,
        stride: int,
        regions: str | None,
        max_n_fraction: float | None,
        skip_invalid: bool,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        num_threads: int,
        prefetch: int,
        pin_memory: bool,
        compact: bool,
        mlm_probability: float,
        mask_fraction: float,
        random_fraction: float,
        rc_prob: float,
        soft_masked_weight: float,
        epoch_in_rng: bool,
    ) -> Self:
        """Opens the FASTA/text files in ``paths`` and configures windows, batching, masking."""

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""

    @property
    def num_samples(self) -> int:
        """Number of windows (samples) in the dataset."""

    @property
    def epoch(self) -> int:
        """Current epoch."""

    @property
    def consumed(self) -> int:
        """Samples of the global order consumed in the current epoch (all ranks together)."""

    @property
    def skipped(self) -> tuple[int, int, int]:
        """(malformed lines skipped, short sequences skipped, mostly-N windows dropped)."""

    def seek(self, epoch: int, consumed: int) -> None:
        """Moves to (epoch, consumed) and stops any running producer."""

    def stop(self) -> None:
        """Stops the producer; prefetched batches are discarded, the position is kept."""

    def window(self, index: int) -> str:
        """Raw text of window ``index`` (case preserved, before RC and masking)."""

    def origin(self, index: int) -> tuple[str, int]:
        """(record name, 0-based start) of window ``index``."""

    def __iter__(self) -> Self:
        """Starts (or restarts) the producer from the current position."""

    def __next__(self) -> dict[str, torch.Tensor]:
        """Next batch: ``input_ids``, ``labels``, ``loss_weight``, ``sample_index``."""

@final
class _HostPixels:
    """Owns a pooled pixel buffer while a batch tensor views it (the base object of that
    tensor's numpy array); dropping the last view returns the buffer to the loader's pool."""

@final
class NativeImageLoader:
    """Native image batch stream of one rank; use ``glmx.data.ImageFolderLoader``."""

    def __new__(
        cls,
        root: str,
        split: str,
        *,
        classes: Sequence[str] | None,
        height: int,
        width: int,
        train: bool,
        resize: int,
        scale: tuple[float, float],
        ratio: tuple[float, float],
        hflip_prob: float,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        num_threads: int,
        prefetch: int,
        pin_memory: bool,
        uint8: bool,
        skip_bad: bool,
    ) -> Self:
        """Scans ``root/split/CLASS/*`` and configures transforms and batching."""

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""

    @property
    def num_samples(self) -> int:
        """Number of images in the split."""

    @property
    def classes(self) -> list[str]:
        """Class names (index = label)."""

    @property
    def epoch(self) -> int:
        """Current epoch."""

    @property
    def consumed(self) -> int:
        """Images of the global order consumed in the current epoch (all ranks together)."""

    @property
    def bad_images(self) -> int:
        """Images skipped as unreadable so far."""

    def item(self, index: int) -> tuple[str, int]:
        """(path, label) of image ``index``."""

    def seek(self, epoch: int, consumed: int) -> None:
        """Moves to (epoch, consumed) and stops any running producer."""

    def stop(self) -> None:
        """Stops the producer; prefetched batches are discarded, the position is kept."""

    def __iter__(self) -> Self:
        """Starts (or restarts) the producer from the current position."""

    def __next__(self) -> dict[str, torch.Tensor]:
        """Next batch: ``pixel_values``, ``labels``, ``sample_index``."""

def decode_image(path: str) -> torch.Tensor:
    """Decodes one JPEG or PNG file to an ``[H, W, 3]`` uint8 tensor (the loader's decoder)."""

# --- _testing submodule ------------------------------------------------------------------------

@type_check_only
class _TestingModule(ModuleType):
    """``glmx._glmx._testing``: hooks the test-suite uses to exercise the binding layer."""

    @staticmethod
    def tensor_roundtrip(value: torch.Tensor) -> torch.Tensor:
        """Passes a tensor into Rust and back; the result shares storage with the input."""

    @staticmethod
    def add_in_place(value: torch.Tensor, amount: float) -> None:
        """Adds ``amount`` in place from Rust with the GIL released."""

    @staticmethod
    def raise_error(kind: str, message: str) -> None:
        """Raises core error ``kind`` ("data", "checkpoint", "train") through the mapping."""

    @staticmethod
    def spin(seconds: float) -> int:
        """Spins in Rust for ``seconds`` without the GIL, polling for Ctrl-C every millisecond."""

    @staticmethod
    def emit_log(level: str, message: str) -> None:
        """Emits one ``tracing`` event at ``level`` from a Rust thread other than the caller's."""

# A PyO3 submodule is not importable as ``glmx._glmx._testing`` (no entry in sys.modules), so
# stubtest cannot check it as a module; tests/test_stubs.py compares these signatures instead.
_testing: _TestingModule
