"""Zero-copy reading of checkpoint files: memory-map, verify the checksum, wrap tensors.

Tensors share a private (copy-on-write) mapping of the file, so loading costs no copy and no
fresh memory; writing to a loaded tensor copies only the touched pages and never alters the
file. The checksum pass runs in Rust without the GIL and faults every page in, which is the
"full read" a caller pays anyway.
"""

from __future__ import annotations

import errno
import json
import math
import mmap
import os
import stat
from typing import Any

import torch

from glmx import _glmx
from glmx.errors import CheckpointError

__all__ = ["read_mapped"]

#: Largest safetensors header read (as the safetensors library).
MAX_HEADER = 100 * 1024 * 1024

_DTYPES = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3": torch.float8_e4m3fn,
}


def _corrupt(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint file '{path}' is corrupt: {what}")


def _open_regular(path: str) -> int:
    # O_NONBLOCK: a FIFO planted in a checkpoint cannot block the reader; O_NOFOLLOW: the file
    # itself is not a symlink (the coordinator also refuses symlinked directories inside a
    # checkpoint, see docs/security.md).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _corrupt(path, "it is a symlink (refused inside a checkpoint)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _corrupt(path, "not a regular file")
    return fd


def read_mapped(
    path: str, size: int | None = None, checksum: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Map safetensors file ``path``; with ``size``/``checksum`` verify them first.

    Returns ``(tensors, metadata)``. A truncated, altered or malformed file (bad dtype, negative
    shape, overlapping or out-of-range ``data_offsets``) raises :class:`glmx.CheckpointError`
    naming it.
    """
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as f:
        actual = os.fstat(f.fileno()).st_size
        if size is not None and actual != size:
            raise _corrupt(
                path, f"size is {actual} bytes, the manifest says {size} (truncated or altered)"
            )
        if actual < 8:
            raise _corrupt(path, "shorter than 8 bytes")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    if checksum is not None:
        got = _glmx.checksum_buffer(mm)
        if got != checksum:
            raise _corrupt(
                path, f"checksum {got} does not match the manifest's {checksum} (file altered)"
            )
    n = int.from_bytes(mm[:8], "little")
    if n > min(actual - 8, MAX_HEADER):
        raise _corrupt(path, f"header length {n} does not fit in a {actual}-byte file")
    try:
        header = json.loads(mm[8 : 8 + n])
    except (ValueError, RecursionError) as err:
        raise _corrupt(path, f"header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    base = 8 + n
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "__metadata__ is not a JSON object")
    entries = [_entry(path, name, info) for name, info in header.items()]
    _check_layout(path, entries, actual - base)
    tensors: dict[str, torch.Tensor] = {}
    for name, dtype, shape, start, count, itemsize in entries:
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        t = torch.frombuffer(mm, dtype=dtype, count=count, offset=base + start).view(shape)
        # Misaligned data (mixed dtypes in one file) is copied so kernels see aligned memory.
        tensors[name] = t.clone() if (base + start) % itemsize else t
    return tensors, {str(k): str(v) for k, v in metadata.items()}


_Entry = tuple[str, torch.dtype, list[int], int, int, int]


def _entry(path: str, name: str, info: Any) -> _Entry:
    def bad(what: str) -> CheckpointError:
        return _corrupt(path, f"tensor '{name}' has {what}")

    dtype_name = info.get("dtype") if isinstance(info, dict) else None
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise bad("a malformed header entry or an unknown dtype")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(_uint(d) for d in shape) or len(shape) > 64:
        raise bad(f"an invalid shape {shape!r} (non-negative integers only)")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_uint(o) for o in offsets):
        raise bad(f"invalid data_offsets {offsets!r}")
    dtype = _DTYPES[dtype_name]
    count = math.prod(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    start, end = offsets
    if end - start != count * itemsize:
        raise bad(f"inconsistent offsets [{start}, {end}] for shape {shape}")
    return name, dtype, shape, start, count, itemsize


def _uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path: str, entries: list[_Entry], data_len: int) -> None:
    # As safetensors requires: tensors tile the data section exactly, without overlap or gap.
    cursor = 0
    for name, _, _, start, count, itemsize in sorted(entries, key=lambda e: (e[3], e[4] * e[5])):
        if start != cursor:
            what = "overlaps the previous one" if start < cursor else "leaves a gap before it"
            raise _corrupt(path, f"tensor '{name}' {what} (data_offsets start {start})")
        cursor = start + count * itemsize
    if cursor != data_len:
        raise _corrupt(path, f"data section is {data_len} bytes but tensors cover {cursor}")
