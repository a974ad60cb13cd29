"""Tokenizer, reverse complement, loss weights and MLM masking statistics of DnaMlmLoader."""

from __future__ import annotations

import random

import pytest
import torch

from glmx.data import DnaMlmLoader

TOKENS = {"a": 3, "c": 4, "g": 5, "t": 6}
COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")


def tokenize(text: str) -> list[int]:
    return [TOKENS.get(ch.lower(), 2) for ch in text]


def reverse_complement(text: str) -> str:
    return text.translate(COMPLEMENT)[::-1]


@pytest.fixture(scope="module")
def dna_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("dna") / "seqs.txt"
    lines = []
    for _ in range(40):
        seq = "".join(rng.choice("ACGTacgtN") for _ in range(256))
        lines.append(seq)
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def batches(loader: DnaMlmLoader) -> list[dict[str, torch.Tensor]]:
    return list(loader)


def test_tokenizer_table_without_masking(dna_file: str) -> None:
    loader = DnaMlmLoader(
        dna_file, seq_len=64, batch_size=8, mlm_probability=0.0, rc_prob=0.0, shuffle=False
    )
    for b in batches(loader):
        assert b["input_ids"].dtype == torch.int64 and b["labels"].dtype == torch.int64
        assert b["loss_weight"].dtype == torch.float32 and b["sample_index"].dtype == torch.int64
        for row, idx in zip(b["input_ids"], b["sample_index"], strict=True):
            assert row.tolist() == tokenize(loader.window(int(idx)))
        assert (b["labels"] == -100).all()
        assert (b["loss_weight"] == 0).all()


def test_reverse_complement_preserves_case(dna_file: str) -> None:
    loader = DnaMlmLoader(
        dna_file, seq_len=64, batch_size=8, mlm_probability=1.0, rc_prob=1.0, seed=3
    )
    for b in batches(loader):
        for labels, weights, idx in zip(
            b["labels"], b["loss_weight"], b["sample_index"], strict=True
        ):
            rc = reverse_complement(loader.window(int(idx)))
            want = [t if t != 2 else -100 for t in tokenize(rc)]
            assert labels.tolist() == want
            want_w = [0.0 if ch in "nN" else (0.01 if ch.islower() else 1.0) for ch in rc]
            assert weights.tolist() == pytest.approx(want_w)


def test_rc_probability_half(dna_file: str) -> None:
    loader = DnaMlmLoader(
        dna_file, seq_len=16, batch_size=64, mlm_probability=0.0, rc_prob=0.5, seed=1
    )
    flipped = total = 0
    for b in batches(loader):
        for row, idx in zip(b["input_ids"], b["sample_index"], strict=True):
            text = loader.window(int(idx))
            fwd, rc = tokenize(text), tokenize(reverse_complement(text))
            assert row.tolist() in (fwd, rc)
            flipped += row.tolist() == rc and fwd != rc
            total += fwd != rc
    assert 0.4 < flipped / total < 0.6


def test_loss_weights_follow_case_and_eval_weight(dna_file: str) -> None:
    for train, weight in ((True, 0.25), (False, 0.0)):
        loader = DnaMlmLoader(
            dna_file,
            seq_len=64,
            batch_size=8,
            mlm_probability=1.0,
            soft_masked_weight=0.25,
            train=train,
        )
        for b in batches(loader):
            for w, idx in zip(b["loss_weight"], b["sample_index"], strict=True):
                text = loader.window(int(idx))
                if train:  # RC is on in training: compare as a multiset per case class
                    assert sorted(w.tolist()) == sorted(
                        0.0 if ch in "nN" else (weight if ch.islower() else 1.0) for ch in text
                    )
                else:
                    assert w.tolist() == [
                        0.0 if ch in "nN" else (weight if ch.islower() else 1.0) for ch in text
                    ]


def test_masking_statistics(dna_file: str) -> None:
    loader = DnaMlmLoader(dna_file, seq_len=256, batch_size=16, rc_prob=0.0, shuffle=False, seed=11)
    selected = candidates = 0
    shown = torch.zeros(7)
    kept = 0
    for b in batches(loader):
        truth = torch.tensor([tokenize(loader.window(int(i))) for i in b["sample_index"]])
        sel = b["labels"] != -100
        assert (b["labels"][sel] == truth[sel]).all()
        assert (truth[sel] != 2).all(), "[UNK] positions are never selected"
        assert (b["input_ids"][~sel] == truth[~sel]).all()
        assert (b["loss_weight"][~sel] == 0).all() and (b["loss_weight"][sel] > 0).all()
        candidates += int((truth != 2).sum())
        selected += int(sel.sum())
        shown += torch.bincount(b["input_ids"][sel], minlength=7).float()
        kept += int((b["input_ids"][sel] == truth[sel]).sum())
    assert abs(selected / candidates - 0.15) < 0.01
    frac = shown / selected
    assert abs(float(frac[1]) - (0.8 + 0.1 / 7)) < 0.02  # [MASK], incl. random draws of [MASK]
    assert abs(float(frac[0]) - 0.1 / 7) < 0.01  # random draws cover all 7 tokens
    assert abs(kept / selected - (0.1 + 0.1 / 7)) < 0.015


def test_eval_masks_are_fixed_across_epochs(dna_file: str) -> None:
    loader = DnaMlmLoader(dna_file, seq_len=64, batch_size=8, train=False, seed=5)
    first = [b["input_ids"].clone() for b in loader]
    loader.set_epoch(3)
    second = [b["input_ids"] for b in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    train = DnaMlmLoader(dna_file, seq_len=64, batch_size=8, shuffle=False, rc_prob=0.0, seed=5)
    e0 = [b["input_ids"].clone() for b in train]
    e1 = [b["input_ids"] for b in train]  # the finished pass moved to epoch 1
    assert train.epoch == 2
    assert not all(torch.equal(a, b) for a, b in zip(e0, e1, strict=True))


def test_uint8_wire_gives_the_same_batches(dna_file: str) -> None:
    a = DnaMlmLoader(dna_file, seq_len=64, batch_size=8, seed=2)
    b = DnaMlmLoader(dna_file, seq_len=64, batch_size=8, seed=2, wire_dtype="uint8")
    for x, y in zip(a, b, strict=True):
        assert y["input_ids"].dtype == torch.int64
        for key in x:
            assert torch.equal(x[key], y[key]), key
