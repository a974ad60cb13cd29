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
import binascii
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
#: Deepest nesting :func:`unflatten_state` accepts (real optimizer state nests about 5 deep).
MAX_DEPTH = 100
# numpy scalar and array dtypes a structure may name: numbers and bools only (no object,
# void, string or structured dtypes, whose constructors accept arbitrary input).
_NP_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 "
    "longdouble float128 complex64 complex128 complex256".split()
)


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

    def encode(self, obj: Any, path: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CheckpointError(
                f"state at '{path}' nests deeper than {MAX_DEPTH} levels; flatten it first"
            )
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
            return {
                "__tuple__": [self.encode(v, f"{path}.{i}", depth + 1) for i, v in enumerate(obj)]
            }
        if isinstance(obj, list):
            return [self.encode(v, f"{path}.{i}", depth + 1) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
            if plain:
                return {
                    k: self.encode(v, f"{path}.{k}" if path else k, depth + 1)
                    for k, v in obj.items()
                }
            return {
                "__dict__": [
                    [
                        self.encode(k, f"{path}.<key>", depth + 1),
                        self.encode(v, f"{path}.{k}" if path else str(k), depth + 1),
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
            if obj.dtype.name not in _NP_DTYPES:  # np.str_, np.bytes_: stored as the value
                return self.encode(obj.item(), path, depth + 1)
            return {"__np__": obj.dtype.name, "value": self.encode(obj.item(), path, depth + 1)}
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


def _torch_dtypes() -> dict[str, torch.dtype]:
    # An allow-list of torch.dtype objects by name, built once; a name that is not a dtype
    # (e.g. "load", "hub") is never looked up on the torch module.
    return {n: v for n, v in vars(torch).items() if isinstance(v, torch.dtype)}


_TORCH_DTYPES = _torch_dtypes()
_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class _Malformed(Exception):
    pass


def unflatten_state(
    structure: str, tensors: dict[str, torch.Tensor], map_location: Any = None
) -> Any:
    """Rebuild the nested value from :func:`flatten_state` output; no code is executed.

    ``map_location`` moves tensors to a device (``"cpu"``, ``"cuda:0"``, a ``torch.device``).
    Any malformed structure (unknown dtype, bad base64, nesting deeper than
    :data:`MAX_DEPTH`, a missing tensor) raises :class:`glmx.CheckpointError`.
    """
    try:
        tree = json.loads(structure)
    except (ValueError, TypeError, RecursionError) as err:
        raise CheckpointError(f"checkpoint state structure is not valid JSON: {err}") from None
    try:
        return _Decoder(tensors, map_location).decode(tree, 0)
    except _Malformed as err:
        raise CheckpointError(f"checkpoint state structure is malformed: {err}") from None


class _Decoder:
    def __init__(self, tensors: dict[str, torch.Tensor], map_location: Any) -> None:
        self.tensors = tensors
        self.map_location = map_location

    def tensor(self, name: Any) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise _Malformed(f"it refers to tensor {name!r}, which the file does not hold")
        t = self.tensors[name]
        return t.to(self.map_location) if self.map_location is not None else t

    def decode(self, node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Malformed(f"nesting deeper than {MAX_DEPTH}")
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict):
            return node
        tag = next(iter(node), None)
        if tag not in _TAGS:
            return {k: self.decode(v, depth + 1) for k, v in node.items()}
        try:
            return self.tagged(tag, node, depth)
        except (TypeError, ValueError, KeyError, OverflowError) as err:
            raise _Malformed(f"bad {tag} entry ({type(err).__name__}: {err})") from None

    def tagged(self, tag: str, node: dict[str, Any], depth: int) -> Any:
        value = node[tag]
        if tag == "__tensor__":
            return self.tensor(value)
        if tag == "__tuple__":
            return tuple(self.decode(v, depth + 1) for v in _list(value, tag))
        if tag == "__dict__":
            out = {}
            for pair in _list(value, tag):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise _Malformed("a __dict__ item is not a [key, value] pair")
                key = _hashable(self.decode(pair[0], depth + 1))
                out[key] = self.decode(pair[1], depth + 1)
            return out
        if tag == "__float__":
            if value not in _FLOATS:
                raise _Malformed(f"__float__ must be 'inf', '-inf' or 'nan', not {value!r}")
            return _FLOATS[value]
        if tag == "__bytes__":
            if not isinstance(value, str):
                raise _Malformed("__bytes__ is not a string")
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error as err:
                raise _Malformed(f"__bytes__ is not valid base64 ({err})") from None
        if tag == "__dtype__":
            if not isinstance(value, str) or value not in _TORCH_DTYPES:
                raise _Malformed(f"unknown torch dtype {value!r}")
            return _TORCH_DTYPES[value]
        np = _np()
        if tag == "__np__":
            return np.dtype(_np_dtype(value)).type(self.decode(node.get("value"), depth + 1))
        # __ndarray__
        arr = (
            self.tensors[value].numpy()
            if value in self.tensors
            else self.tensor(value).cpu().numpy()
        )
        dtype = _np_dtype(node.get("dtype"))
        if dtype == "uint64":
            return arr.view(np.uint64).copy()
        return arr.astype(dtype) if arr.dtype.name != dtype else arr


def _list(value: Any, tag: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(f"{tag} is not a list")
    return value


def _np_dtype(name: Any) -> str:
    if not isinstance(name, str) or name not in _NP_DTYPES:
        raise _Malformed(f"numpy dtype {name!r} is not allowed (numbers and bool only)")
    return name


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        raise _Malformed("a __dict__ key is a mapping")
    return key
