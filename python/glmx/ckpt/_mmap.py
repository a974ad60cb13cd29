"""Zero-copy reading of checkpoint files: memory-map, verify the checksum, wrap tensors.

Tensors share a private (copy-on-write) mapping of the file, so loading costs no copy and no
fresh memory; writing to a loaded tensor copies only the touched pages and never alters the
file. The checksum pass runs in Rust without the GIL and faults every page in, which is the
"full read" a caller pays anyway.
"""

from __future__ import annotations

import json
import mmap
import os
from typing import Any

import torch

from glmx import _glmx
from glmx.errors import CheckpointError

__all__ = ["read_mapped"]

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


def read_mapped(
    path: str, size: int | None = None, checksum: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Map safetensors file ``path``; with ``size``/``checksum`` verify them first.

    Returns ``(tensors, metadata)``. A truncated or altered file raises
    :class:`glmx.CheckpointError` naming it.
    """
    with open(path, "rb") as f:
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
    if n > actual - 8:
        raise _corrupt(path, f"header length {n} does not fit in a {actual}-byte file")
    try:
        header: dict[str, Any] = json.loads(mm[8 : 8 + n])
    except ValueError as err:
        raise _corrupt(path, f"header is not valid JSON ({err})") from None
    base = 8 + n
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = [int(d) for d in info["shape"]]
            start, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _corrupt(path, f"tensor '{name}' has a malformed header entry") from None
        count = 1
        for d in shape:
            count *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if end - start != count * itemsize or start < 0 or base + end > actual:
            raise _corrupt(path, f"tensor '{name}' has inconsistent offsets [{start}, {end}]")
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        t = torch.frombuffer(mm, dtype=dtype, count=count, offset=base + start).view(shape)
        # Misaligned data (mixed dtypes in one file) is copied so kernels see aligned memory.
        tensors[name] = t.clone() if (base + start) % itemsize else t
    return tensors, {str(k): str(v) for k, v in metadata.items()}
