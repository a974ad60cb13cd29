"""Exact DDP sharding, bit-identical resume (also across world sizes) and thread determinism."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from glmx.data import DnaMlmLoader


def write_windows(path: Path, n: int, seq_len: int = 16, seed: int = 0) -> str:
    rng = random.Random(seed)
    path.write_text(
        "".join("".join(rng.choice("ACGTacgt") for _ in range(seq_len)) + "\n" for _ in range(n))
    )
    return str(path)


def rank_batches(src: str, world: int, rank: int, **kw) -> list[dict[str, torch.Tensor]]:
    kw.setdefault("seq_len", 16)
    kw.setdefault("batch_size", 4)
    return list(DnaMlmLoader(src, rank=rank, world_size=world, **kw))


@pytest.mark.parametrize("n", [1, 7, 61, 64, 100])
def test_every_sample_exactly_once_equal_batches(tmp_path: Path, n: int) -> None:
    src = write_windows(tmp_path / "d.txt", n)
    for world in range(1, 9):
        seen: Counter[int] = Counter()
        counts, shapes = [], []
        for rank in range(world):
            loader = DnaMlmLoader(
                src, seq_len=16, batch_size=4, rank=rank, world_size=world, seed=9
            )
            got = list(loader)
            assert len(got) == len(loader)
            counts.append(len(got))
            shapes.append([tuple(b["input_ids"].shape) for b in got])
            for b in got:
                idx = b["sample_index"]
                pad = idx == -1
                assert (b["loss_weight"][pad] == 0).all() and (b["labels"][pad] == -100).all()
                seen.update(idx[~pad].tolist())
        assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}, (n, world)
        assert len(set(counts)) == 1, (n, world, counts)
        assert all(s == shapes[0] for s in shapes), "every rank sees the same batch shapes"


def test_drop_last_gives_full_batches_only(tmp_path: Path) -> None:
    src = write_windows(tmp_path / "d.txt", 50)
    for world in (1, 3, 4):
        total = 0
        for rank in range(world):
            got = rank_batches(src, world, rank, drop_last=True)
            assert all(b["input_ids"].shape[0] == 4 and (b["sample_index"] >= 0).all() for b in got)
            total += sum(b["input_ids"].shape[0] for b in got)
        assert total == (50 // (4 * world)) * 4 * world


def test_epochs_differ_and_shuffle_off_keeps_order(tmp_path: Path) -> None:
    src = write_windows(tmp_path / "d.txt", 40)
    loader = DnaMlmLoader(src, seq_len=16, batch_size=8, seed=1)
    e0 = torch.cat([b["sample_index"] for b in loader])
    e1 = torch.cat([b["sample_index"] for b in loader])
    assert sorted(e0.tolist()) == sorted(e1.tolist()) == list(range(40))
    assert not torch.equal(e0, e1)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([b["sample_index"] for b in loader]), e0)
    ordered = DnaMlmLoader(src, seq_len=16, batch_size=8, shuffle=False)
    assert torch.cat([b["sample_index"] for b in ordered]).tolist() == list(range(40))


def assert_same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in ("input_ids", "labels", "loss_weight", "sample_index"):
            assert torch.equal(x[key], y[key]), key


def test_resume_is_bit_identical_without_replay(tmp_path: Path) -> None:
    src = write_windows(tmp_path / "d.txt", 203)
    full = DnaMlmLoader(src, seq_len=16, batch_size=4, seed=3)
    reference = list(full) + list(full)  # two epochs
    first = DnaMlmLoader(src, seq_len=16, batch_size=4, seed=3)
    it = iter(first)
    head = [next(it) for _ in range(17)]
    state = first.state_dict()
    assert state["consumed"] == 17 * 4 and state["epoch"] == 0
    resumed = DnaMlmLoader(src, seq_len=16, batch_size=4, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(0)  # a trainer calling set_epoch for the same epoch keeps the position
    tail = list(resumed) + list(resumed)
    assert_same(head + tail[: len(reference) - 17], reference)
    # an abandoned iterator leaves the position where the consumer stopped
    it2 = iter(first)
    next(it2)
    assert first.state_dict()["consumed"] == 18 * 4


def test_elastic_resume_on_another_world_size(tmp_path: Path) -> None:
    src = write_windows(tmp_path / "d.txt", 301)
    # 4 ranks x 6 = global batch 24; stop after 5 steps, resume on 3 ranks x 8 (same global batch)
    loaders = [
        DnaMlmLoader(src, seq_len=16, batch_size=6, rank=r, world_size=4, seed=4) for r in range(4)
    ]
    iters = [iter(lo) for lo in loaders]
    seen: list[int] = []
    for _ in range(5):
        for it in iters:
            seen += next(it)["sample_index"].tolist()
    states = [lo.state_dict() for lo in loaders]
    assert all(s == states[0] for s in states)
    for rank in range(3):
        lo = DnaMlmLoader(src, seq_len=16, batch_size=8, rank=rank, world_size=3, seed=4)
        lo.load_state_dict(states[0])
        for b in lo:
            seen += [i for i in b["sample_index"].tolist() if i >= 0]
    assert sorted(seen) == list(range(301))
    # the global order is the same as one rank with the whole global batch
    single = torch.cat(
        [b["sample_index"] for b in DnaMlmLoader(src, seq_len=16, batch_size=24, seed=4)]
    )
    assert seen[: 5 * 24] == single[: 5 * 24].tolist()


def test_same_batches_for_any_thread_count(tmp_path: Path) -> None:
    src = write_windows(tmp_path / "d.txt", 257, seq_len=64)
    runs = [
        list(DnaMlmLoader(src, seq_len=64, batch_size=16, num_threads=t, prefetch=p, seed=8))
        for t, p in ((1, 1), (2, 4), (4, 2))
    ]
    assert_same(runs[0], runs[1])
    assert_same(runs[0], runs[2])


def test_bad_state_is_rejected(tmp_path: Path) -> None:
    import glmx

    src = write_windows(tmp_path / "d.txt", 20)
    loader = DnaMlmLoader(src, seq_len=16, batch_size=4, seed=1)
    state = loader.state_dict()
    other = DnaMlmLoader(write_windows(tmp_path / "e.txt", 21), seq_len=16, batch_size=4, seed=1)
    with pytest.raises(glmx.DataError, match="21 samples"):
        other.load_state_dict(state)
    with pytest.raises(glmx.DataError, match="malformed"):
        loader.load_state_dict({"epoch": 1})
