"""Loggers with Lightning's constructor arguments: ``MLFlowLogger`` (a local file store or a
tracking URI), ``WandbLogger`` (offline mode unless a key is set), and a ``TensorBoardLogger``
that also writes hparams (with the final metrics), an ``epoch`` scalar and images.

The trainer calls ``log_hyperparams`` with the module's ``hparams`` when ``fit`` starts and
``after_fit`` when it ends (the :class:`LoggerHooks` callback, added by default).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmx._optional import require
from glmx.trainer import loggers as _loggers
from glmx.trainer.callbacks import Callback

if TYPE_CHECKING:
    from glmx.trainer.module import Module
    from glmx.trainer.trainer import Trainer

log = logging.getLogger("glmx.trainer")


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "/"))
        else:
            out[key] = v
    return out


def _checkpoint_paths(trainer: Trainer) -> list[Path]:
    from glmx.trainer.checkpointing import ModelCheckpoint

    found: list[Path] = []
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint):
            for p in (cb.best_model_path, cb.last_model_path):
                if p and Path(p).exists() and Path(p) not in found:
                    found.append(Path(p))
    return found


class LoggerHooks(Callback):
    """Sends the module's hyperparameters to every logger when ``fit`` starts and calls each
    logger's ``after_fit(trainer)`` (checkpoint artifacts, final hparams metrics) at its end."""

    def on_fit_start(self, trainer: Trainer, pl_module: Module) -> None:
        params = dict(getattr(pl_module, "hparams", None) or {})
        dm = trainer.datamodule
        params.update(dict(getattr(dm, "hparams", None) or {}) if dm is not None else {})
        for lg in trainer.loggers:
            lg.log_hyperparams(params)

    def on_fit_end(self, trainer: Trainer, pl_module: Module) -> None:
        for lg in trainer.loggers:
            after = getattr(lg, "after_fit", None)
            if after is not None:
                after(trainer)


class MLFlowLogger(_loggers.Logger):
    """MLflow tracking (Lightning's ``MLFlowLogger``): params, metrics, tags, and with
    ``log_model=True`` the best and last checkpoints as artifacts. Without ``tracking_uri``
    (and no ``MLFLOW_TRACKING_URI``), a local file store in ``save_dir`` (default
    ``./mlruns``). Needs ``pip install 'glmx[mlflow]'``."""

    def __init__(
        self,
        experiment_name: str = "lightning_logs",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        save_dir: str | os.PathLike[str] | None = "./mlruns",
        log_model: bool | str = False,
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
    ) -> None:
        require("mlflow", "mlflow", "MLFlowLogger")
        super().__init__(save_dir)
        self.experiment_name, self.run_name, self.tags = experiment_name, run_name, tags or {}
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        self.log_model, self.prefix, self.artifact_location = log_model, prefix, artifact_location
        self._run_id = run_id
        self._client: Any = None
        self._experiment_id: str | None = None

    @property
    def experiment(self) -> Any:
        """The ``MlflowClient`` (created with the run on first use)."""
        if self._client is None:
            uri = self.tracking_uri
            if uri is None:
                uri = Path(self.save_dir or "./mlruns").resolve().as_uri()
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=uri)
            self.tracking_uri = uri
            exp = self._client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = (
                exp.experiment_id
                if exp is not None
                else self._client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_location
                )
            )
            if self._run_id is None:
                tags = {k: str(v) for k, v in self.tags.items()}
                if self.run_name:
                    tags["mlflow.runName"] = self.run_name
                run = self._client.create_run(self._experiment_id, tags=tags)
                self._run_id = run.info.run_id
        return self._client

    @property
    def run_id(self) -> str:
        """The MLflow run's id."""
        _ = self.experiment
        assert self._run_id is not None
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        """The MLflow experiment's id."""
        _ = self.experiment
        return self._experiment_id

    def attach(self, default_dir: Path, rank: int) -> None:
        self.rank = rank

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        if self.rank != 0 or not params:
            return
        from mlflow.entities import Param

        flat = [Param(k, str(v)[:6000]) for k, v in _flat(params).items()]
        for i in range(0, len(flat), 100):
            self.experiment.log_batch(self.run_id, params=flat[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        if self.rank != 0 or not metrics:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(f"{self.prefix}{k}".replace("@", "_"), float(v), now, step)
            for k, v in metrics.items()
        ]
        self.experiment.log_batch(self.run_id, metrics=batch)

    def after_fit(self, trainer: Trainer) -> None:
        if self.rank != 0 or not self.log_model:
            return
        for path in _checkpoint_paths(trainer):
            self.experiment.log_artifacts(self.run_id, str(path), f"checkpoints/{path.name}")

    def finalize(self) -> None:
        if self.rank == 0 and self._client is not None:
            self._client.set_terminated(self.run_id, "FINISHED")


def has_wandb_key() -> bool:
    """Whether wandb would find an API key: ``WANDB_API_KEY``, or an entry for the
    ``WANDB_BASE_URL`` host (default ``api.wandb.ai``) in ``$NETRC`` / ``~/.netrc`` (where
    ``wandb login`` stores it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc
    from urllib.parse import urlsplit

    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").netloc
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        return bool(host) and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger(_loggers.Logger):
    """Weights & Biases (Lightning's ``WandbLogger``; ``pip install 'glmx[wandb]'``).

    ``wandb.init`` gets what Lightning passes it: ``name``, ``project`` (else
    ``WANDB_PROJECT``, else ``lightning_logs``), ``dir`` (``save_dir``, else ``dir``), ``id``
    (``version``, else ``id``), ``resume="allow"``, ``anonymous``, then ``**kwargs`` (which
    win). Online unless ``offline=True``, ``WANDB_MODE`` says otherwise, or no API key is
    found (neither ``WANDB_API_KEY`` nor a ``wandb login`` entry in ``~/.netrc``): then
    offline, with files under ``<dir>/wandb`` that ``wandb sync`` uploads later, so a cluster
    node without a key never waits on the network. Metrics are plotted against
    ``trainer/global_step``; ``log_model=True`` adds the best and last checkpoints as an
    artifact."""

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] | None = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: bool | str = False,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        require("wandb", "wandb", "WandbLogger")
        run_dir = os.fspath(save_dir) if save_dir is not None else None
        run_dir = run_dir or (os.fspath(dir) if dir is not None else None)
        super().__init__(run_dir)
        if not offline and not os.environ.get("WANDB_MODE") and not has_wandb_key():
            offline = True  # no key: runs stay on disk (`wandb sync` uploads them later)
        self.offline, self.log_model, self.prefix = offline, log_model, prefix
        self.checkpoint_name = checkpoint_name
        self._wandb_init: dict[str, Any] = {
            "name": name,
            "project": project or os.environ.get("WANDB_PROJECT", "lightning_logs"),
            "dir": run_dir,
            "id": version or id,
            "resume": "allow",
            "anonymous": "allow" if anonymous else None,
        }
        self._wandb_init.update(kwargs)
        self.name, self.project = self._wandb_init["name"], self._wandb_init["project"]
        self.version = self._wandb_init["id"]
        self._run: Any = None

    def init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``wandb.init``: Lightning's, plus ``mode="offline"``
        when offline (Lightning sets ``WANDB_MODE=dryrun`` in the environment instead; the
        keyword keeps it to this run). Online runs get no ``mode``: wandb's own settings
        (``WANDB_MODE``, ``wandb offline``) still apply, as under Lightning."""
        kwargs = dict(self._wandb_init)
        if self.offline:
            kwargs.setdefault("mode", "offline")
        return kwargs

    @property
    def experiment(self) -> Any:
        """The ``wandb.Run`` (started on first use; an active ``wandb.run`` is reused, as
        Lightning does)."""
        if self._run is None:
            import wandb

            if wandb.run is not None:
                log.warning(
                    "WandbLogger: a wandb run is already in progress; reusing it (call "
                    "wandb.finish() first for a new run)"
                )
                self._run = wandb.run
                return self._run
            kwargs = self.init_kwargs()
            if kwargs.get("dir"):
                Path(kwargs["dir"]).mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(**kwargs)
            if getattr(self._run, "define_metric", None):  # Lightning's default x-axis
                if kwargs.get("sync_tensorboard"):
                    self._run.define_metric("*", step_metric="global_step")
                else:
                    self._run.define_metric("trainer/global_step")
                    self._run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
            atexit.register(self.finish)
        return self._run

    def attach(self, default_dir: Path, rank: int) -> None:
        self.rank = rank

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        if self.rank == 0 and params:
            self.experiment.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        if self.rank != 0 or not metrics:
            return
        # Lightning's trainer sends ``epoch`` with the metrics, so its prefix applies too
        join = f"{self.prefix}{self.LOGGER_JOIN_CHAR}" if self.prefix else ""
        values: dict[str, Any] = {f"{join}{k}": float(v) for k, v in metrics.items()}
        values[f"{join}epoch"] = epoch
        values["trainer/global_step"] = step
        self.experiment.log(values)

    def after_fit(self, trainer: Trainer) -> None:
        if self.rank != 0 or not self.log_model:
            return
        import wandb

        paths = _checkpoint_paths(trainer)
        if paths:
            art = wandb.Artifact(self.checkpoint_name or f"model-{self.experiment.id}", "model")
            for p in paths:
                art.add_dir(str(p), name=p.name)
            self.experiment.log_artifact(art)

    def finish(self) -> None:
        """End the run (flushes the offline files); also called at exit."""
        if self._run is not None:
            self._run.finish()
            self._run = None


class TensorBoardLogger(_loggers.TensorBoardLogger):
    """TensorBoard scalars plus an ``epoch`` scalar with every record, the hparams (written
    with the final metrics when each stage ends) and images (:meth:`log_image`).
    hparams and images need ``tensorboard`` (``pip install 'glmx[tb]'``)."""

    def __init__(
        self,
        save_dir: str | os.PathLike[str] | None = None,
        name: str = "tensorboard",
        log_graph: bool = False,
        default_hp_metric: bool = True,
        **_: Any,
    ) -> None:
        super().__init__(save_dir, name)
        self.hparams: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self._step = 0

    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int) -> None:
        if self.rank != 0 or not metrics:
            return
        self._last.update({k: float(v) for k, v in metrics.items()})
        self._step = max(self._step, step)
        super().log_metrics({**metrics, "epoch": float(epoch)}, step, epoch)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(_flat(params))

    def _summary(self, proto: Any, step: int) -> None:
        if self._file is None:
            self._open()
        self._write(_loggers._event(time.time(), step, summary=proto.SerializeToString()))

    def log_image(
        self, tag: str, image: Any, step: int | None = None, dataformats: str = "CHW"
    ) -> None:
        """An image (a tensor or array, ``CHW`` by default, floats in [0, 1] or uint8)."""
        if self.rank != 0:
            return
        summary = require("torch.utils.tensorboard.summary", "tb", "TensorBoard images")
        self._summary(summary.image(tag, image, dataformats=dataformats), step or self._step)

    def finalize(self) -> None:
        if self.rank == 0 and self.hparams:
            summary = require("torch.utils.tensorboard.summary", "tb", "TensorBoard hparams")
            hp = {
                k: v if isinstance(v, (int, float, str, bool)) else str(v)
                for k, v in self.hparams.items()
            }
            metrics = {k: v for k, v in self._last.items() if k != "epoch"}
            for proto in summary.hparams(hp, metrics):
                self._summary(proto, self._step)
        super().finalize()
