"""What the fit loop needs to know about a training loader: tokens per batch, and the
``torch.Generator`` objects a shuffled torch ``DataLoader`` draws its order from (saved at each
epoch start so a mid-epoch checkpoint resumes on the same order)."""

from __future__ import annotations

from typing import Any

import torch


def tokens_of(batch: Any) -> int:
    """Token positions in a batch with ``input_ids`` (0 when there are none)."""
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return int(batch["input_ids"].numel())
    return 0


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The ``torch.Generator`` objects a torch DataLoader draws its shuffle order from."""
    found: list[torch.Generator] = []
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (
        loader,
        getattr(loader, "sampler", None),
        getattr(batch_sampler, "sampler", None),
    ):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def set_generators(loader: Any, states: list[Any] | None) -> None:
    if not states:
        return
    gens = loader_generators(loader)
    for gen, state in zip(gens, states, strict=False):
        gen.set_state(torch.as_tensor(state).to("cpu", torch.uint8))
