"""A synthetic regression task: the smallest complete Module + DataModule pair."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from glmx.trainer.module import DataModule, Module


class ToyRegressionData(DataModule):
    """``y = x @ w + noise`` with fixed seeds; train/val/test splits of ``n`` samples each."""

    def __init__(
        self, n: int = 512, dim: int = 8, batch_size: int = 32, noise: float = 0.05, seed: int = 0
    ) -> None:
        super().__init__()
        self.n, self.dim, self.batch_size, self.noise, self.seed = n, dim, batch_size, noise, seed
        self.splits: dict[str, TensorDataset] = {}

    def setup(self, stage: str) -> None:
        g = torch.Generator().manual_seed(self.seed)
        w = torch.randn(self.dim, generator=g)
        for i, split in enumerate(("train", "val", "test")):
            gs = torch.Generator().manual_seed(self.seed + 1 + i)
            x = torch.randn(self.n, self.dim, generator=gs)
            y = x @ w + self.noise * torch.randn(self.n, generator=gs)
            self.splits[split] = TensorDataset(x, y)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=self.batch_size)


class MLPRegressor(Module):
    """A two-layer MLP trained with MSE; logs ``train/loss``, ``val/loss``, ``test/loss``."""

    def __init__(
        self, dim: int = 8, hidden: int = 32, lr: float = 0.01, optimizer: Any = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test/loss", self._loss(batch))

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is not None:
            return self.optimizer_factory(params=self.parameters())
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
