"""``FastaDataModule``: the scaffolded Hydra project's data: masked-LM batches from DNA files."""

from __future__ import annotations

import os
from typing import Any

from glmx.data import DnaMlmLoader
from glmx.trainer.module import DataModule

__all__ = ["FastaDataModule"]


class FastaDataModule(DataModule):
    """Training batches cut from FASTA/text files with :class:`glmx.data.DnaMlmLoader`
    (``loader_kwargs`` are passed through); no validation split."""

    def __init__(
        self,
        sources: str | os.PathLike[str] | list[str],
        seq_len: int = 128,
        batch_size: int = 8,
        num_threads: int = 1,
        seed: int = 0,
        loader_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.sources, self.seq_len, self.batch_size = sources, seq_len, batch_size
        self.num_threads, self.seed = num_threads, seed
        self.loader_kwargs = dict(loader_kwargs or {})
        self._train: DnaMlmLoader | None = None

    def train_dataloader(self) -> DnaMlmLoader:
        if self._train is None:
            self._train = DnaMlmLoader(
                self.sources,
                seq_len=self.seq_len,
                batch_size=self.batch_size,
                num_threads=self.num_threads,
                seed=self.seed,
                **self.loader_kwargs,
            )
        return self._train
