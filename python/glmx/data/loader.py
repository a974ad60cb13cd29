"""``DnaMlmLoader``: the genomic masked-LM batch stream (native Rust pipeline)."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import Any, Union

import torch

from glmx import _glmx
from glmx.errors import DataError

Source = Union[str, "os.PathLike[str]"]
_STATE_VERSION = 1


def expand_sources(sources: Source | Sequence[Source]) -> list[str]:
    """Turns a path, a glob or a list of them into a list of files (globs sorted).

    Raises:
        DataError: when a glob matches nothing or no source is given.
    """
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    paths: list[str] = []
    for item in items:
        s = os.fspath(item)
        if glob.has_magic(s):
            matched = sorted(p for p in glob.glob(s, recursive=True) if os.path.isfile(p))
            if not matched:
                raise DataError(f"no data file matches the pattern {s!r}")
            paths.extend(matched)
        else:
            paths.append(s)
    if not paths:
        raise DataError("no data sources given")
    return paths


def _dist_defaults(rank: int | None, world_size: int | None) -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return (
            dist.get_rank() if rank is None else rank,
            dist.get_world_size() if world_size is None else world_size,
        )
    return (0 if rank is None else rank, 1 if world_size is None else world_size)


class DnaMlmLoader:
    """Batches of masked-LM samples cut from DNA files, built in native code.

    Iterating yields dicts of tensors, ``[B, seq_len]`` unless noted:
    ``input_ids`` (int64, GPN tokens ``[PAD]=0 [MASK]=1 [UNK]=2 a=3 c=4 g=5 t=6``),
    ``labels`` (int64, the true token where a position is to be predicted, -100 elsewhere),
    ``loss_weight`` (float32, 1 for uppercase and ``soft_masked_weight`` for lowercase positions
    that are predicted, 0 elsewhere, so ``(w * ce).sum() / w.sum()`` is the GPN loss) and
    ``sample_index`` (int64 ``[B]``, the global window index; -1 marks a padding row, whose
    weights are all 0).

    Args:
        sources: file path(s) or glob(s): FASTA (``.fa/.fasta/.fna``), JSONL shards of
            ``{"id", "seq"}`` (``.jsonl``), or plain text with one sequence per line; each may be
            ``.gz`` or ``.zst`` compressed.
        seq_len: window length in bases (= tokens).
        batch_size: rows per batch on this rank.
        stride: distance between window starts (default ``seq_len``: non-overlapping).
        mlm_probability: probability that a position is predicted (of those: ``mask_fraction``
            become ``[MASK]``, ``random_fraction`` a random token, the rest stay).
        rc_prob: probability of reverse-complementing a window (case preserved).
        soft_masked_weight: loss weight of lowercase (soft-masked) positions in training.
        shuffle: a fresh seeded permutation every epoch (O(1) memory; no ``randperm``).
        seed: seed of order, masking and reverse complement.
        rank, world_size: this process's shard; default from ``torch.distributed`` when it is
            initialized, else 0 and 1. Every sample is read exactly once per epoch across ranks;
            every rank gets the same number of batches (short tails are padded with rows marked
            ``sample_index == -1`` and zero weight).
        drop_last: drop the final incomplete global batch instead of padding it.
        num_threads: threads of the private pool that builds batches.
        prefetch: batches built ahead of the consumer.
        device: ``"cpu"``, or a CUDA device: host batches are then pinned and copied
            asynchronously on a side stream, one batch ahead.
        train: ``False`` makes an evaluation loader: no reverse complement, lowercase weight
            ``eval_soft_masked_weight``, dataset order, and the same masks on every pass (seeded
            by ``seed`` only); each ``iter()`` starts from the first batch.
        eval_soft_masked_weight: lowercase weight when ``train=False`` (GPN: 0.0).
        regions: a BED-like file (``name start end``); windows are cut only inside these regions.
        max_n_fraction: drop windows whose fraction of non-ACGT bases exceeds this.
        skip_invalid: skip malformed lines and sequences shorter than ``seq_len`` (counted,
            logged as a warning) instead of raising :class:`glmx.DataError`.
        mask_fraction, random_fraction: the 80/10/10 split.
        wire_dtype: ``"uint8"`` builds ids as uint8 and labels as int8 on the host (8x fewer
            bytes to copy to a GPU) and widens them to int64 on the device.

    Position: the loader remembers where it is (epoch, samples consumed). ``iter()`` continues
    from there; finishing a pass moves to the next epoch. ``state_dict()`` captures it in a few
    integers; after ``load_state_dict`` the next batches are bit-identical to an uninterrupted
    run, also with a different world size (the global order depends only on seed and epoch).
    """

    def __init__(
        self,
        sources: Source | Sequence[Source],
        seq_len: int = 512,
        batch_size: int = 64,
        stride: int | None = None,
        mlm_probability: float = 0.15,
        rc_prob: float = 0.5,
        soft_masked_weight: float = 0.01,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
        num_threads: int = 2,
        prefetch: int = 4,
        device: str | torch.device = "cpu",
        *,
        train: bool = True,
        eval_soft_masked_weight: float = 0.0,
        regions: Source | None = None,
        max_n_fraction: float | None = None,
        skip_invalid: bool = False,
        mask_fraction: float = 0.8,
        random_fraction: float = 0.1,
        wire_dtype: str = "int64",
    ) -> None:
        if seq_len < 1 or batch_size < 1 or (stride is not None and stride < 1):
            raise DataError(
                "seq_len, batch_size and stride must be >= 1 "
                f"(got {seq_len}, {batch_size}, {stride})"
            )
        if wire_dtype not in ("int64", "uint8"):
            raise DataError(f"wire_dtype must be 'int64' or 'uint8', not {wire_dtype!r}")
        rank, world_size = _dist_defaults(rank, world_size)
        self.device = torch.device(device)
        self.train = train
        self.seed = seed
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self._compact = wire_dtype == "uint8"
        self._cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if self.device.type == "cuda" and not self._cuda:
            raise DataError(f"device={str(self.device)!r} requested but CUDA is not available")
        self._native = _glmx.NativeDnaLoader(
            expand_sources(sources),
            seq_len=seq_len,
            stride=stride or seq_len,
            regions=None if regions is None else os.fspath(regions),
            max_n_fraction=max_n_fraction,
            skip_invalid=skip_invalid,
            batch_size=batch_size,
            shuffle=shuffle and train,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
            num_threads=num_threads,
            prefetch=prefetch,
            pin_memory=self._cuda,
            compact=self._compact,
            mlm_probability=mlm_probability,
            mask_fraction=mask_fraction,
            random_fraction=random_fraction,
            rc_prob=rc_prob if train else 0.0,
            soft_masked_weight=soft_masked_weight if train else eval_soft_masked_weight,
            epoch_in_rng=train,
        )
        # Position of the last batch handed out when the device path holds one batch ahead.
        self._lag: tuple[int, int] | None = None

    # -- the stream ---------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank)."""
        return len(self._native)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the current position to the end of the epoch."""
        if not self.train:
            self._lag = None
            self._native.seek(0, 0)
        elif self._lag is not None:
            self._native.seek(*self._lag)
            self._lag = None
        it = iter(self._native)
        if self._cuda:
            return self._device_batches(it)
        if self._compact:
            return (_widen(b) for b in it)
        return it

    def _device_batches(
        self, it: Iterator[dict[str, torch.Tensor]]
    ) -> Iterator[dict[str, torch.Tensor]]:
        # Copies run on a side stream one batch ahead; the consumer's stream waits on an event,
        # never on the host. record_stream keeps the caching allocator from reusing the memory
        # while the consumer's stream may still read it.
        dev = self.device
        side = torch.cuda.Stream(dev)

        def launch(
            host: dict[str, torch.Tensor],
        ) -> tuple[dict[str, torch.Tensor], Any, tuple[int, int]]:
            pos = (self._native.epoch, self._native.consumed)
            with torch.cuda.stream(side):
                out = {k: v.to(dev, non_blocking=True) for k, v in host.items()}
                if self._compact:
                    out = _widen(out)
                event = torch.cuda.Event()
                event.record(side)
            return out, event, pos

        def finish(
            item: tuple[dict[str, torch.Tensor], Any, tuple[int, int]],
        ) -> dict[str, torch.Tensor]:
            out, event, pos = item
            current = torch.cuda.current_stream(dev)
            current.wait_event(event)
            for v in out.values():
                v.record_stream(current)
            self._lag = pos
            return out

        pending = None
        for host in it:
            ahead = launch(host)
            if pending is not None:
                yield finish(pending)
            pending = ahead
        if pending is not None:
            yield finish(pending)
        self._lag = None

    # -- position -----------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._lag[0] if self._lag is not None else self._native.epoch

    def set_epoch(self, epoch: int) -> None:
        """Moves to the start of ``epoch``; a no-op when already in that epoch (so calling it
        after ``load_state_dict`` keeps the resumed mid-epoch position)."""
        if epoch != self.epoch:
            self._lag = None
            self._native.seek(epoch, 0)

    def state_dict(self) -> dict[str, int]:
        """The exact stream position in a few integers (plus checks against the wrong data)."""
        epoch, consumed = (
            self._lag if self._lag is not None else (self._native.epoch, self._native.consumed)
        )
        return {
            "version": _STATE_VERSION,
            "epoch": epoch,
            "consumed": consumed,
            "seed": self.seed,
            "num_samples": self._native.num_samples,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resumes at a position saved by :meth:`state_dict` (any world size or batch size).

        Raises:
            DataError: when the state is malformed or belongs to another dataset or seed.
        """
        try:
            version, epoch, consumed = (
                int(state["version"]),
                int(state["epoch"]),
                int(state["consumed"]),
            )
            seed, num_samples = int(state["seed"]), int(state["num_samples"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"malformed data loader state {state!r}: {err}") from None
        if version != _STATE_VERSION:
            raise DataError(
                f"data loader state version {version} is not supported (expected {_STATE_VERSION})"
            )
        if num_samples != self._native.num_samples or seed != self.seed:
            raise DataError(
                f"data loader state is for {num_samples} samples with seed {seed}, but this "
                f"loader has {self._native.num_samples} samples with seed {self.seed}; "
                "resume with the same data and seed"
            )
        self._lag = None
        self._native.seek(epoch, consumed)

    # -- inspection ---------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Number of windows in the dataset (all ranks together)."""
        return self._native.num_samples

    @property
    def skipped(self) -> tuple[int, int, int]:
        """(malformed lines skipped, short sequences skipped, mostly-N windows dropped)."""
        return self._native.skipped

    def window(self, index: int) -> str:
        """The raw text of window ``index`` (as in the file: case kept, no RC, no masking)."""
        return self._native.window(index)

    def origin(self, index: int) -> tuple[str, int]:
        """(sequence name, 0-based start) of window ``index``."""
        return self._native.origin(index)

    def __repr__(self) -> str:
        return (
            f"DnaMlmLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"rank={self.rank}, world_size={self.world_size}, train={self.train}, "
            f"device={str(self.device)!r})"
        )


def _widen(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    batch["input_ids"] = batch["input_ids"].long()
    batch["labels"] = batch["labels"].long()
    return batch
