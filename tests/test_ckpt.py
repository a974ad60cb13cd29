"""Checkpoint coordinator through the public API: exact resume, layout, retention, corruption."""

from __future__ import annotations

import json
import math
import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
import safetensors
import torch
from safetensors.torch import load_file as st_load

import glmx
from glmx.ckpt import (
    CheckpointManager,
    flatten_state,
    load_file,
    rng_state,
    save_file,
    set_rng_state,
    unflatten_state,
)


def _setup(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=40)
    return model, opt, sched


def _step(model, opt, sched) -> float:
    x = torch.randn(4, 8)
    noise = np.random.rand() + random.random()
    loss = ((model(x) - noise) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def test_resume_continues_bit_identically(tmp_path: Path) -> None:
    model, opt, sched = _setup(0)
    random.seed(1)
    np.random.seed(2)
    for _ in range(6):
        _step(model, opt, sched)
    mgr = CheckpointManager(tmp_path)
    mgr.save(
        6,
        model.state_dict(),
        {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng_state(),
            "trainer": {"step": 6},
        },
    )
    reference = [_step(model, opt, sched) for _ in range(8)]
    mgr.wait()

    model2, opt2, sched2 = _setup(123)  # different init: everything must come from the checkpoint
    state = CheckpointManager(tmp_path).load("last")
    model2.load_state_dict(state["model"])
    opt2.load_state_dict(state["components"]["optimizer"])
    sched2.load_state_dict(state["components"]["scheduler"])
    set_rng_state(state["components"]["rng"])
    assert state["step"] == 6 and state["components"]["trainer"] == {"step": 6}
    resumed = [_step(model2, opt2, sched2) for _ in range(8)]
    assert resumed == reference
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_layout_manifest_and_no_pickle(tmp_path: Path) -> None:
    model, opt, sched = _setup(0)
    _step(model, opt, sched)
    mgr = CheckpointManager(tmp_path, async_save=False)
    path = mgr.save(
        3, model, {"optimizer": opt.state_dict(), "rng": rng_state()}, metrics={"val/loss": 0.5}
    )
    assert path == tmp_path / "checkpoints" / "checkpoint-3"
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "checkpoint-3"
    files = sorted(p.name for p in path.iterdir())
    assert files == [
        "checkpoint_manifest.json",
        "model.safetensors",
        "optimizer.safetensors",
        "rng_rank0.safetensors",
    ]
    man = json.loads((path / "checkpoint_manifest.json").read_text())
    assert man["world_size"] == 1 and man["step"] == 3 and man["torch_version"] == torch.__version__
    assert man["glmx_version"] == glmx.__version__ and man["timestamp"].endswith("Z")
    assert man["metrics"] == {"val/loss": 0.5}
    assert man["components"]["rng"]["sharing"] == "PER_RANK" and man["components"]["rng"][
        "ranks"
    ] == [0]
    assert man["components"]["optimizer"]["metadata"]["type"] == "dict"
    for name, comp in man["components"].items():
        assert comp["sharing"] in glmx.ckpt.SHARING_PATTERNS
        for f in comp["files"]:
            raw = (path / f["path"]).read_bytes()
            assert len(raw) == f["size"] and f"crc32:{zlib.crc32(raw):08x}" == f["checksum"], name
            assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # pickle / torch zip
            with safetensors.safe_open(path / f["path"], framework="pt") as handle:
                handle.keys()
    weights = st_load(path / "model.safetensors")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_sharded_model_has_hf_index(tmp_path: Path) -> None:
    state = {f"layer{i}.weight": torch.full((64, 64), float(i)) for i in range(5)}
    mgr = CheckpointManager(tmp_path, max_shard_size=40_000)
    path = mgr.save(1, state)
    mgr.wait()
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 5 * 64 * 64 * 4
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    merged = {}
    for shard in shards:
        merged.update(st_load(path / shard))
    assert set(merged) == set(state)
    loaded = mgr.load(path)["model"]
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_retention_keeps_newest_and_best(tmp_path: Path) -> None:
    mgr = CheckpointManager(
        tmp_path, save_total_limit=2, keep_best=1, monitor="val/loss", mode="min"
    )
    losses = {1: 0.9, 2: 0.1, 3: 0.8, 4: 0.7, 5: 0.95}
    for step, loss in losses.items():
        mgr.save(step, {"w": torch.full((3,), float(step))}, metrics={"val/loss": loss, "epoch": 0})
    mgr.wait()
    assert [c.step for c in mgr.list()] == [2, 5]
    assert mgr.resolve("best").name == "checkpoint-2"
    assert mgr.resolve("last").name == "checkpoint-5"
    assert torch.equal(mgr.load("best")["model"]["w"], torch.full((3,), 2.0))
    with pytest.raises(glmx.CheckpointError, match="val/loss"):
        mgr.save(6, {"w": torch.zeros(1)}, metrics={"train/loss": 1.0})


def test_nested_state_round_trips_exactly(tmp_path: Path) -> None:
    value = {
        "ints": {0: "a", 7: (1, 2.5, None)},
        "floats": [math.inf, -math.inf, 1.0, -0.0, 1e-300],
        "big": 2**70,
        "tensor": torch.arange(6, dtype=torch.bfloat16).view(2, 3),
        "np": np.arange(5, dtype=np.uint32),
        "np64": np.array([2**63 + 5], dtype=np.uint64),
        "scalar": np.float32(1.5),
        "bytes": b"\x00\x80pickle?",
        "__tensor__": "a reserved key",
        "dtype": torch.float16,
        "nan": math.nan,
    }
    save_file(value, tmp_path / "v.safetensors")
    back = load_file(tmp_path / "v.safetensors")
    assert math.isnan(back.pop("nan")) and math.isnan(value.pop("nan"))
    assert back["ints"] == value["ints"] and isinstance(back["ints"][7], tuple)
    assert back["floats"] == value["floats"] and math.copysign(1, back["floats"][3]) == -1
    assert torch.equal(back["tensor"], value["tensor"]) and back["tensor"].dtype == torch.bfloat16
    assert back["np"].dtype == np.uint32 and np.array_equal(back["np"], value["np"])
    assert back["np64"].dtype == np.uint64 and back["np64"][0] == 2**63 + 5
    assert type(back["scalar"]) is np.float32
    for key in ("big", "bytes", "__tensor__", "dtype"):
        assert back[key] == value[key]
    with pytest.raises(glmx.CheckpointError, match="at 'sched.fn'"):
        flatten_state({"sched": {"fn": lambda step: step}})
    assert unflatten_state(*_flat({"a": [1, (2,)]})) == {"a": [1, (2,)]}


def _flat(value):
    structure, tensors = flatten_state(value)
    return structure, dict(tensors)


def test_corruption_is_detected_and_named(tmp_path: Path) -> None:
    model, opt, sched = _setup(0)
    _step(model, opt, sched)
    mgr = CheckpointManager(tmp_path, async_save=False)
    path = mgr.save(1, model, {"optimizer": opt.state_dict()})
    target = path / "optimizer.safetensors"
    raw = bytearray(target.read_bytes())
    raw[-3] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(glmx.CheckpointError, match="optimizer.safetensors.*checksum"):
        mgr.load("last")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(glmx.CheckpointError, match="model.safetensors.*truncated"):
        mgr.load("last", components=[])


def test_missing_components_and_weights(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path)
    path = mgr.save(1, {"w": torch.ones(2)}, {"optimizer": {"lr": 0.1}, "trainer": {"step": 1}})
    mgr.wait()
    (path / "optimizer.safetensors").unlink()
    with pytest.warns(UserWarning, match="optimizer"):
        out = mgr.load("last")
    assert out["components"] == {"trainer": {"step": 1}}
    (path / "model.safetensors").unlink()
    with pytest.raises(glmx.CheckpointError, match="model weights missing"):
        mgr.load("last")
    with pytest.raises(glmx.CheckpointError, match="not found"):
        mgr.load("checkpoint-99")


def test_world_size_mismatch_is_clear(tmp_path: Path) -> None:
    rank0 = CheckpointManager(tmp_path, world_size=2, rank=0, validate_replicated=True)
    rank1 = CheckpointManager(tmp_path, world_size=2, rank=1, validate_replicated=True)
    for mgr, r in ((rank0, 0), (rank1, 1)):
        comps = {"rng": {"r": torch.tensor([r])}, "optimizer": {"m": torch.ones(3)}}
        mgr.save(4, {"w": torch.ones(2)}, comps, sharing={"optimizer": "REPLICATED"})
    rank1.wait()
    rank0.wait()
    man = rank0.manifest("last")
    assert man["components"]["rng"]["ranks"] == [0, 1] and man["world_size"] == 2
    assert rank1.load("last")["components"]["rng"]["r"].item() == 1
    single = CheckpointManager(tmp_path)
    with pytest.raises(glmx.CheckpointError, match="world_size=2.*world_size=1"):
        single.load("last")
    assert torch.equal(single.load("last", components=[])["model"]["w"], torch.ones(2))
    # Desynchronised replicas are caught.
    rank0.save(
        5,
        {"w": torch.ones(2)},
        {"optimizer": {"m": torch.ones(3)}},
        sharing={"optimizer": "REPLICATED"},
    )
    rank1.save(
        5,
        {"w": torch.ones(2)},
        {"optimizer": {"m": torch.zeros(3)}},
        sharing={"optimizer": "REPLICATED"},
    )
    rank1.wait()
    with pytest.raises(glmx.CheckpointError, match="REPLICATED component 'optimizer' differs"):
        rank0.wait()


def test_async_failure_surfaces_on_next_call(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path)
    (tmp_path / "checkpoints" / ".checkpoint-5.tmp").write_text("in the way")
    mgr.save(5, {"w": torch.ones(2)})
    with pytest.raises(glmx.CheckpointError, match="step 5 failed"):
        mgr.save(6, {"w": torch.ones(2)})
    os.remove(tmp_path / "checkpoints" / ".checkpoint-5.tmp")
    mgr.save(6, {"w": torch.ones(2)})
    assert mgr.wait().name == "checkpoint-6"


def test_uncommitted_dirs_are_ignored_and_cleaned(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path)
    mgr.save(1, {"w": torch.ones(2)})
    mgr.wait()
    stale = tmp_path / "checkpoints" / ".checkpoint-2.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    half = (
        tmp_path / "checkpoints" / "checkpoint-3"
    )  # renamed dir without manifest cannot exist, but be safe
    half.mkdir()
    assert mgr.resolve("last").name == "checkpoint-1"
    with pytest.raises(glmx.CheckpointError, match="not a committed checkpoint"):
        mgr.resolve(half)
    CheckpointManager(tmp_path)
    assert not stale.exists()


def test_async_snapshot_is_independent_of_later_updates(tmp_path: Path) -> None:
    weight = torch.arange(12, dtype=torch.float32).view(3, 4)
    state = {
        "w": weight,
        "wt": weight.t(),  # non-contiguous
        "half": torch.ones(5, dtype=torch.bfloat16),
        "mask": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(7, dtype=torch.int64),
    }
    expected = {k: v.clone() for k, v in state.items()}
    mgr = CheckpointManager(tmp_path)
    for step in (1, 2):  # the second save reuses the host buffers of the first
        mgr.save(step, state, {"trainer": {"step": step}})
        weight.add_(100.0)  # the training loop moves on while the writer runs
        mgr.wait()
        loaded = mgr.load("last")["model"]
        for k, v in expected.items():
            assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
        expected = {k: v.clone() for k, v in state.items()}
    # Loaded tensors are copy-on-write: writing to them never changes the file.
    loaded = mgr.load("last")["model"]
    loaded["w"].zero_()
    assert torch.equal(mgr.load("checkpoint-2")["model"]["w"], expected["w"] - 100.0)


def test_stale_latest_pointer_falls_back(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, async_save=False)
    mgr.save(1, {"w": torch.ones(1)})
    mgr.save(2, {"w": torch.ones(1) * 2})
    (tmp_path / "checkpoints" / "latest").write_text("checkpoint-9\n")
    assert mgr.resolve("last").name == "checkpoint-2"
    with pytest.raises(glmx.CheckpointError, match="no committed checkpoint"):
        CheckpointManager(tmp_path / "other").load("last")
