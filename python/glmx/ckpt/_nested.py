"""Pickle-free encoding of nested state (optimizer, scheduler, RNG, loader state).

A nested value becomes a JSON structure plus a flat list of named tensors; the JSON refers to
tensors by name. Loading parses JSON and reads safetensors, so it never executes code.

Encoding: ``None``, ``bool``, ``int``, ``str``, finite ``float``, ``list`` and ``dict`` with
string keys map to JSON directly. Everything else is a one-key tagged object:
``{"__tensor__": name}``, ``{"__ndarray__": name, "dtype": ...}``, ``{"__tuple__": [...]}``,
``{"__dict__": [[key, value], ...]}`` (non-string or reserved keys, e.g. the int keys of
``optimizer.state_dict()["state"]``), ``{"__float__": "inf"|"-inf"|"nan"}``,
``{"__bytes__": base64}``, ``{"__np__": dtype, "value": v}`` and ``{"__dtype__": "float32"}``.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import torch

from glmx.errors import CheckpointError

__all__ = ["flatten_state", "unflatten_state"]

_TAGS = (
    "__tensor__",
    "__ndarray__",
    "__tuple__",
    "__dict__",
    "__float__",
    "__bytes__",
    "__np__",
    "__dtype__",
)
# numpy dtypes safetensors cannot hold are widened losslessly and narrowed back on load.
_WIDEN = {"uint16": "int64", "uint32": "int64"}
_UNSUPPORTED_TORCH = (torch.complex64, torch.complex128, torch.complex32)


def _np():
    import numpy

    return numpy


class _Encoder:
    def __init__(self) -> None:
        self.tensors: list[tuple[str, torch.Tensor]] = []
        self._names: set[str] = set()

    def _name(self, path: str) -> str:
        name = path or "value"
        n = 1
        while name in self._names:
            n += 1
            name = f"{path}#{n}"
        self._names.add(name)
        return name

    def encode(self, obj: Any, path: str) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {"__float__": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, torch.Tensor):
            if obj.dtype in _UNSUPPORTED_TORCH:
                raise CheckpointError(
                    f"state at '{path}' is a {obj.dtype} tensor; safetensors cannot store it"
                )
            if obj.layout != torch.strided:
                raise CheckpointError(
                    f"state at '{path}' is a {obj.layout} tensor; convert it to dense first"
                )
            name = self._name(path)
            self.tensors.append((name, obj.detach()))
            return {"__tensor__": name}
        if isinstance(obj, torch.dtype):
            return {"__dtype__": str(obj).removeprefix("torch.")}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
            if plain:
                return {k: self.encode(v, f"{path}.{k}" if path else k) for k, v in obj.items()}
            return {
                "__dict__": [
                    [
                        self.encode(k, f"{path}.<key>"),
                        self.encode(v, f"{path}.{k}" if path else str(k)),
                    ]
                    for k, v in obj.items()
                ]
            }
        if isinstance(obj, (bytes, bytearray)):
            return {"__bytes__": base64.b64encode(bytes(obj)).decode("ascii")}
        np = _np()
        if isinstance(obj, np.ndarray):
            dtype = obj.dtype.name
            if dtype == "uint64":
                arr = obj.view(np.int64)
            elif dtype in _WIDEN:
                arr = obj.astype(_WIDEN[dtype])
            else:
                arr = obj
            try:
                tensor = torch.from_numpy(np.ascontiguousarray(arr))
            except TypeError as err:
                raise CheckpointError(
                    f"numpy array at '{path}' has dtype {dtype}, which cannot be stored"
                ) from err
            name = self._name(path)
            self.tensors.append((name, tensor))
            return {"__ndarray__": name, "dtype": dtype}
        if isinstance(obj, np.generic):
            return {"__np__": obj.dtype.name, "value": self.encode(obj.item(), path)}
        raise CheckpointError(
            f"cannot store a value of type {type(obj).__qualname__} at '{path or '<root>'}': "
            "checkpoint state may hold tensors, numpy arrays, numbers, strings, bytes, None, "
            "lists, tuples and dicts (no pickle, by design)"
        )


def flatten_state(state: Any) -> tuple[str, list[tuple[str, torch.Tensor]]]:
    """Split nested ``state`` into a JSON structure and a list of ``(name, tensor)``.

    Raises :class:`glmx.CheckpointError` naming the dotted path of a value that cannot be
    stored without pickle (functions, arbitrary objects).
    """
    enc = _Encoder()
    structure = enc.encode(state, "")
    return json.dumps(structure, allow_nan=False, separators=(",", ":")), enc.tensors


def unflatten_state(
    structure: str, tensors: dict[str, torch.Tensor], map_location: Any = None
) -> Any:
    """Rebuild the nested value from :func:`flatten_state` output; no code is executed.

    ``map_location`` moves tensors to a device (``"cpu"``, ``"cuda:0"``, a ``torch.device``).
    """
    try:
        tree = json.loads(structure)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint state structure is not valid JSON: {err}") from err

    def tensor(name: str) -> torch.Tensor:
        try:
            t = tensors[name]
        except KeyError:
            raise CheckpointError(
                f"checkpoint state refers to tensor '{name}', which the file does not hold"
            ) from None
        return t.to(map_location) if map_location is not None else t

    def decode(node: Any) -> Any:
        if isinstance(node, list):
            return [decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) >= 1 and next(iter(node)) in _TAGS:
            tag = next(iter(node))
            value = node[tag]
            if tag == "__tensor__":
                return tensor(value)
            if tag == "__tuple__":
                return tuple(decode(v) for v in value)
            if tag == "__dict__":
                return {_hashable(decode(k)): decode(v) for k, v in value}
            if tag == "__float__":
                return float(value)
            if tag == "__bytes__":
                return base64.b64decode(value)
            if tag == "__dtype__":
                return getattr(torch, value)
            np = _np()
            if tag == "__np__":
                return np.dtype(node["__np__"]).type(decode(node["value"]))
            if tag == "__ndarray__":
                arr = tensors[value].numpy() if value in tensors else tensor(value).cpu().numpy()
                dtype = node["dtype"]
                if dtype == "uint64":
                    return arr.view(np.uint64).copy()
                return arr.astype(dtype) if arr.dtype.name != dtype else arr
        return {k: decode(v) for k, v in node.items()}

    return decode(tree)


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key
