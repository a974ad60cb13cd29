"""Checkpoints of sharded (FSDP) runs: every rank writes its own shards, the manifest records
the layout, and any world size (or a plain, unsharded module) loads them.

Layout inside ``checkpoint-<step>/`` (the usual glmx checkpoint, see docs/checkpoints.md):

* ``model_shards_rank<r>.safetensors``: rank r's dim-0 slice of every parameter and buffer
  (fully qualified names, as in ``model.state_dict()``);
* ``optimizer_shards_rank<r>.safetensors``: rank r's slice of every optimizer state tensor,
  keyed by parameter name (``torch.distributed.checkpoint.state_dict`` format);
* ``model.safetensors`` is empty; the manifest's ``model_shards`` metadata holds
  ``{"layout": "fsdp2-dim0", "world_size", "params": {name: {"shape", "dtype", "rows"}}}``
  where ``rows[r] = [start, stop)`` is rank r's slice of dim 0.

Loading assembles each full tensor from the memory-mapped shards and hands it to
``torch.distributed.checkpoint.state_dict.set_{model,optimizer}_state_dict(full_state_dict=True)``,
which keeps this rank's slice under the current sharding. torch's own DCP file format is not
used: its ``.metadata`` file is a pickle, and glmx checkpoints never unpickle.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from glmx.ckpt._mmap import read_mapped
from glmx.ckpt._nested import unflatten_state
from glmx.errors import CheckpointError

if TYPE_CHECKING:
    from glmx.ckpt import CheckpointManager
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.distributed")

LAYOUT = "fsdp2-dim0"
_SHARDED = ("model_shards", "optimizer_shards")


def _local(value: Any) -> Any:
    """This rank's plain-tensor view of a DTensor (other values unchanged)."""
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        return value.to_local()
    if isinstance(value, dict):
        return {k: _local(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_local(v) for v in value]
    return value


def _rows(n: int, world: int) -> list[list[int]]:
    # torch.chunk semantics, as FSDP2's Shard(0): ceil(n / world) rows per rank, the last ranks
    # may hold fewer or none.
    size = -(-n // world) if n else 0
    return [[min(r * size, n), min((r + 1) * size, n)] for r in range(world)]


def _layout(model: nn.Module, world: int) -> dict[str, Any]:
    from torch.distributed.tensor import DTensor, Replicate

    params = {}
    for name, t in model.state_dict().items():
        sharded = isinstance(t, DTensor) and not all(isinstance(p, Replicate) for p in t.placements)
        shape = list(t.shape)
        params[name] = {
            "shape": shape,
            "dtype": str(t.dtype).removeprefix("torch."),
            "rows": _rows(shape[0], world) if sharded and shape else None,
        }
    return {"layout": LAYOUT, "world_size": world, "params": params}


def save_sharded(
    trainer: Trainer,
    manager: CheckpointManager,
    components: dict[str, Any],
    sharing: dict[str, str],
    metrics: dict[str, Any],
) -> Path:
    """Save an FSDP run at ``trainer.global_step``: ``components`` and ``sharing`` are those
    the trainer built; the unsharded ``optimizer`` entry is replaced by per-rank model and
    optimizer shards, and the manifest records their layout."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    module = trainer.lightning_module
    assert module is not None
    components = dict(components)
    components.pop("optimizer", None)  # replaced by the sharded, name-keyed form
    components["model_shards"] = _local(dict(module.state_dict()))
    components["optimizer_shards"] = {
        str(i): _local(get_optimizer_state_dict(module, opt))
        for i, opt in enumerate(trainer.optimizers)
    }
    sharing = {**sharing, "model_shards": "PER_RANK", "optimizer_shards": "PER_RANK"}
    return manager.save(
        trainer.global_step,
        {},
        components,
        sharing=sharing,
        metrics=metrics,
        metadata={
            "model_shards": _layout(module, trainer.world_size),
            "optimizer_shards": {"layout": LAYOUT},
        },
    )


def _read_all_ranks(ckpt_dir: Path, manifest: dict[str, Any], name: str) -> list[Any]:
    comp = manifest["components"][name]
    out = []
    for f in sorted(comp["files"], key=lambda f: _rank_of(f["path"])):
        path = ckpt_dir / Path(f["path"]).name
        tensors, meta = read_mapped(str(path), f["size"], f["checksum"])
        structure = meta.get("glmx.structure")
        if structure is None:
            raise CheckpointError(f"{path} has no glmx.structure metadata")
        out.append(unflatten_state(structure, tensors, None))
    return out


def _rank_of(path: str) -> int:
    stem = Path(path).name.split(".")[0]
    return int(stem.rsplit("_rank", 1)[1])


def _cat(shards: list[torch.Tensor], rows: Any) -> torch.Tensor:
    # ``rows`` is None for unsharded (replicated) entries: every rank holds the whole tensor.
    return shards[0] if rows is None else torch.cat(shards, 0)


def _assemble_model(
    shards: list[dict[str, Any]], layout: dict[str, Any]
) -> dict[str, torch.Tensor]:
    full = {}
    for name, info in layout["params"].items():
        t = _cat([s[name] for s in shards], info["rows"])
        if list(t.shape) != info["shape"]:
            raise CheckpointError(
                f"sharded checkpoint: '{name}' reassembles to {list(t.shape)}, manifest says "
                f"{info['shape']}"
            )
        full[name] = t
    return full


def _assemble_optimizer(shards: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    params = layout["params"]
    first = shards[0]
    state: dict[str, Any] = {}
    for name, entry in first["state"].items():
        rows = params.get(name, {}).get("rows")
        merged = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and rows is not None:
                merged[key] = _cat([s["state"][name][key] for s in shards], rows)
            else:
                merged[key] = value
        state[name] = merged
    return {"state": state, "param_groups": first["param_groups"]}


def _fqn_keyed(model: nn.Module, opt: torch.optim.Optimizer, osd: dict[str, Any]) -> dict[str, Any]:
    # An ``opt.state_dict()`` (parameters numbered in param_groups order) keyed by name instead.
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in opt.param_groups for p in g["params"]]
    state = {order[int(i)]: v for i, v in osd["state"].items()}
    groups = [{**g, "params": [order[int(i)] for i in g["params"]]} for g in osd["param_groups"]]
    return {"state": state, "param_groups": groups}


def consolidate(checkpoint_dir: str | Path) -> dict[str, torch.Tensor]:
    """The full ``model.state_dict()`` of a checkpoint written by a sharded (FSDP) run,
    assembled from every rank's ``model_shards`` file (checksums verified), for tools that read
    plain weights (evaluation, export, serving)::

        from safetensors.torch import save_file
        save_file(consolidate("run/checkpoints/checkpoint-1200"), "model.safetensors")

    Raises :class:`glmx.CheckpointError` when the directory is not a sharded checkpoint.
    """
    path = Path(checkpoint_dir)
    try:
        manifest = json.loads((path / "checkpoint_manifest.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a glmx checkpoint: {err}") from None
    comp = manifest.get("components", {}).get("model_shards")
    if comp is None:
        raise CheckpointError(
            f"{path} is not a sharded checkpoint (no model_shards); read model.safetensors"
        )
    layout = comp.get("metadata", {})
    if layout.get("layout") != LAYOUT:
        raise CheckpointError(f"{path}: unknown shard layout {layout.get('layout')!r}")
    full = _assemble_model(_read_all_ranks(path, manifest, "model_shards"), layout)
    return {k: v.clone() for k, v in full.items()}  # own memory, not the files' maps


def _apply(
    trainer: Trainer, model: nn.Module, full: dict[str, Any], optim: dict[int, Any] | None
) -> None:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, strict=True)
    try:
        set_model_state_dict(model, full, options=opts)
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint does not match {type(model).__name__}: {err}") from None
    if optim is None:
        return
    for i, osd in optim.items():
        set_optimizer_state_dict(
            model, trainer.optimizers[i], osd, options=StateDictOptions(full_state_dict=True)
        )


def load_for(
    trainer: Trainer,
    module: nn.Module,
    manager: CheckpointManager,
    which: str,
    weights_only: bool,
) -> dict[str, Any]:
    """``manager.load`` for the trainer's restore, extended to sharded checkpoints and FSDP runs.

    A checkpoint of an unsharded run loaded by an unsharded run is exactly ``manager.load``.
    Otherwise weights (and optimizer state) are applied to ``module`` here, at any world size;
    the returned ``"model"`` is the module's own state (re-loading it is a no-op) and
    ``"optimizer"`` is left out. Per-rank RNG and loader state are restored only when the world
    size is unchanged (the loader then replays to its position instead).
    """
    from glmx.distributed.strategy import is_sharded

    path = manager.resolve(which)
    manifest = json.loads((path / "checkpoint_manifest.json").read_text())
    sharded_ckpt = "model_shards" in manifest["components"]
    if not sharded_ckpt and not is_sharded(trainer):
        return manager.load(which, components=[] if weights_only else None)
    same_world = int(manifest.get("world_size", 1)) == trainer.world_size
    names = (
        []
        if weights_only
        else [
            n
            for n, comp in manifest["components"].items()
            if n not in _SHARDED and (same_world or comp.get("sharing") in ("GLOBAL", "REPLICATED"))
        ]
    )
    if not weights_only and not same_world:
        warnings.warn(
            f"checkpoint {path.name} was saved by {manifest.get('world_size')} ranks, this run "
            f"has {trainer.world_size}: weights and optimizer state are resharded; per-rank RNG "
            "and loader positions are not restored (the loader replays to its position)",
            stacklevel=2,
        )
    loaded = manager.load(path, components=names)
    optim = None
    if sharded_ckpt:
        layout = manifest["components"]["model_shards"]["metadata"]
        if layout.get("layout") != LAYOUT:
            raise CheckpointError(f"{path}: unknown shard layout {layout.get('layout')!r}")
        full = _assemble_model(_read_all_ranks(path, manifest, "model_shards"), layout)
        if not weights_only:
            per_rank = _read_all_ranks(path, manifest, "optimizer_shards")
            optim = {
                i: _assemble_optimizer([r[str(i)] for r in per_rank], layout)
                for i in range(len(trainer.optimizers))
                if str(i) in per_rank[0]
            }
    else:
        full = loaded["model"]
        if not weights_only:
            saved = loaded["components"].pop("optimizer", {})
            optim = {
                i: _fqn_keyed(module, opt, saved[str(i)])
                for i, opt in enumerate(trainer.optimizers)
                if str(i) in saved
            }
    _apply(trainer, module, full, optim)
    loaded["model"] = dict(module.state_dict())
    return loaded
