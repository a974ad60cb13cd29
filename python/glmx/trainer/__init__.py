"""Lightning-style training: `Module`, `DataModule`, `Trainer`, callbacks, loggers, schedulers."""

from glmx.trainer.callbacks import Callback, EarlyStopping, LearningRateMonitor
from glmx.trainer.checkpointing import ModelCheckpoint
from glmx.trainer.loggers import CSVLogger, JsonLogger, Logger
from glmx.trainer.loggers_ext import MLFlowLogger, TensorBoardLogger, WandbLogger
from glmx.trainer.model_summary import ModelSummary
from glmx.trainer.module import DataModule, Module
from glmx.trainer.optim import constant_with_warmup, cosine_with_warmup, param_groups_no_decay
from glmx.trainer.progress import ProgressBar, RichProgressBar
from glmx.trainer.run_summary import RunSummary
from glmx.trainer.trainer import Trainer, seed_everything

__all__ = [
    "Module",
    "DataModule",
    "Trainer",
    "seed_everything",
    "Callback",
    "EarlyStopping",
    "LearningRateMonitor",
    "ProgressBar",
    "RichProgressBar",
    "ModelSummary",
    "RunSummary",
    "ModelCheckpoint",
    "Logger",
    "JsonLogger",
    "CSVLogger",
    "TensorBoardLogger",
    "MLFlowLogger",
    "WandbLogger",
    "constant_with_warmup",
    "cosine_with_warmup",
    "param_groups_no_decay",
]
