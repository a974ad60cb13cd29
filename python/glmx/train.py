"""``python -m glmx.train``: compose ``configs/train.yaml`` with Hydra overrides, then train.

The lightning-hydra-template flow: seed, instantiate data, model, callbacks, loggers and trainer;
``fit``; ``test`` with the best checkpoint; return ``optimized_metric`` for sweeps.

    python -m glmx.train experiment=tiny_cpu trainer.max_epochs=5
    python -m glmx.train -m model.lr=0.01,0.03          # a sweep: multirun/<date>/<time>/<n>/
    python -m glmx.train --cfg job                      # print the composed config (no torch)

Under DDP (torchrun, ``glmx train -d 0,1``) every rank uses rank 0's output directory.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("glmx.train")


def _instantiate_group(node: Any, what: str) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    from glmx.hydra import instantiate

    if not node:
        return []
    if not isinstance(node, Mapping):
        from glmx.errors import ConfigError

        raise ConfigError(
            f"'{what}' must be a mapping of name -> config, got {type(node).__name__}"
        )
    return [
        instantiate(conf)
        for conf in node.values()
        if isinstance(conf, Mapping) and "_target_" in conf
    ]


def _print_config(cfg: Mapping[str, Any]) -> None:
    import yaml

    print(yaml.safe_dump(dict(_plain(cfg)), sort_keys=False), end="", flush=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _apply_extras(cfg: Mapping[str, Any]) -> None:
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config") and int(os.environ.get("RANK", "0")) == 0:
        _print_config({k: v for k, v in cfg.items() if k != "extras"})


def _metric(trainer: Any, name: str | None) -> float | None:
    if not name:
        return None
    if trainer.fast_dev_run:
        log.info("fast_dev_run: optimized_metric '%s' is not tracked", name)
        return None  # Lightning's fast_dev_run tracks no metrics
    value = trainer.callback_metrics_float(name)
    if value is None:
        if not trainer.validated:
            # a short run that never reached a validation: nothing to optimize (Lightning
            # warns for its checkpoint monitor in the same case)
            log.warning("optimized_metric '%s': no value (validation has not run)", name)
            return None
        raise trainer.missing_metric_error(name, "optimized_metric")
    return value


def train(cfg: Mapping[str, Any]) -> float | None:
    """The training task: returns the value of ``cfg.optimized_metric`` (for sweeps).

    With ``track`` on, the run's record in the experiment registry ends with its true final
    state and the process outcome (``exit`` with the exit code), failures after ``fit``
    (testing, the optimized metric) included."""
    _apply_extras(cfg)
    from glmx.hydra import instantiate
    from glmx.trainer import seed_everything

    _require_nodes(cfg, ("data", "model", "trainer"))
    seed = cfg.get("seed")
    if seed is not None:
        seed_everything(int(seed))
    datamodule = _prepared(instantiate(cfg["data"]))
    model = instantiate(cfg["model"])
    callbacks = _instantiate_group(cfg.get("callbacks"), "callbacks")
    platform = dict(cfg.get("platform") or {})
    if platform.get("url"):
        # `platform.url=...`: a run started outside the platform shows up on its dashboard
        from glmx.platform import PlatformReporter

        callbacks.append(PlatformReporter(**platform))
    tracker = None
    if cfg.get("track", True):
        from glmx.tracking import ExperimentTracker

        # the run's record in the experiment registry (`glmx exp list`): config, git state,
        # host, SLURM ids, status and metrics, from this run's .hydra/ files
        tracker = next((c for c in callbacks if isinstance(c, ExperimentTracker)), None)
        if tracker is None:
            tracker = ExperimentTracker(seed=None if seed is None else int(seed))
            callbacks.append(tracker)
    loggers = _instantiate_group(cfg.get("logger"), "logger")
    trainer = instantiate(cfg["trainer"], callbacks=callbacks, logger=loggers or False)
    try:
        result = _fit_and_test(cfg, trainer, model, datamodule)
    except BaseException as err:
        if tracker is not None and not isinstance(err, SystemExit):
            tracker.record_exit(err)
        raise
    if tracker is not None:
        tracker.record_exit(None)
    return result


def _fit_and_test(cfg: Mapping[str, Any], trainer: Any, model: Any, datamodule: Any) -> Any:
    from glmx.errors import TrainError
    from glmx.trainer import ModelCheckpoint

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    if cfg.get("test", False):
        best = next(
            (c.best_model_path for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), ""
        )
        if not best:
            log.warning("no best checkpoint (monitor not set?): testing the current weights")
        try:
            trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None)
        except TrainError as err:
            # test=true meets data without a test split (an image folder without test/): the
            # trained run stays a success instead of failing at its last step.
            if not str(err).startswith("Trainer.test() needs data"):
                raise
            log.warning(
                "test=true, but %s has no test data: testing skipped (set test=false to "
                "silence this)",
                type(datamodule).__name__,
            )
    # read after testing, so a sweep may optimize a test metric too
    return _metric(trainer, cfg.get("optimized_metric"))


def _require_nodes(cfg: Mapping[str, Any], names: Sequence[str]) -> None:
    """The training task needs these nodes; a config without one is a user mistake, told as
    one line, not a KeyError traceback."""
    from glmx.errors import ConfigError

    missing = [n for n in names if not isinstance(cfg.get(n), Mapping)]
    if missing:
        raise ConfigError(
            f"the composed config has no {', '.join(repr(m) for m in missing)} node(s), which "
            "python -m glmx.train builds (data, model, trainer with _target_); add them to the "
            "primary config or its defaults list (see configs/train.yaml)"
        )


def _prepared(datamodule: Any) -> Any:
    """Runs ``prepare_data`` before the model is built: a model may read what it writes (an
    image classifier takes its classes from the folders a ``prepare`` recipe creates on first
    use). As in Lightning, only local rank 0 prepares; ``fit`` calls it again, a no-op once
    the data exist."""
    prepare = getattr(datamodule, "prepare_data", None)
    if callable(prepare) and os.environ.get("LOCAL_RANK", "0") == "0":
        prepare()
    return datamodule


def evaluate(cfg: Mapping[str, Any]) -> dict[str, float]:
    """The evaluation task of ``python -m glmx.eval``: test ``cfg.ckpt_path``."""
    _apply_extras(cfg)
    from glmx.hydra import instantiate

    datamodule = _prepared(instantiate(cfg["data"]))
    model = instantiate(cfg["model"])
    loggers = _instantiate_group(cfg.get("logger"), "logger")
    trainer = instantiate(cfg["trainer"], logger=loggers or False, enable_checkpointing=False)
    results = trainer.test(
        model=model, datamodule=datamodule, ckpt_path=cfg["ckpt_path"], verbose=False
    )
    for name, value in results[0].items():
        print(f"{name}: {value:.6g}")
    return results[0]


def _share_run_dir_across_ranks() -> None:
    """torchrun starts every rank with the same command line; rank 0 composes the output
    directory and the others reuse it (one directory per run, not one per rank)."""
    from glmx.hydra.runner import RUN_DIR_ENV

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or os.environ.get(RUN_DIR_ENV):
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and os.environ.get("GLMX_ACCELERATOR", "") != "cpu"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    import datetime

    # `${now:...}` in hydra.run.dir then reads the same clock on every rank.
    start = [datetime.datetime.now().isoformat()] if dist.get_rank() == 0 else [None]
    dist.broadcast_object_list(start, src=0)
    os.environ["GLMX_RUN_START"] = str(start[0])


def main(argv: Sequence[str] | None = None, task: Any = train, config_name: str = "train") -> Any:
    """Entry point; ``argv`` defaults to ``sys.argv[1:]``."""
    from glmx.hydra.runner import run

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--cfg", "-c", "--info", "-i") or a.startswith("--cfg=") for a in args):
        _share_run_dir_across_ranks()
    return run(task, args, config_path="configs", config_name=config_name, job_name=config_name)


#: Set either to a non-empty value other than 0 for a full traceback instead of one line.
FULL_ERROR_ENV = ("HYDRA_FULL_ERROR", "GLMX_FULL_ERROR")


def run_console(entry: Any, prog: str) -> None:
    """Runs ``entry()`` as the ``python -m PROG`` command: a glmx error (a config mistake, a
    metric that was never logged) is one line on stderr plus Hydra's hint and exit code 2;
    ``HYDRA_FULL_ERROR=1`` or ``GLMX_FULL_ERROR=1`` re-raises it with the full traceback."""
    from glmx.errors import GlmxError

    try:
        entry()
    except GlmxError as err:
        if any(os.environ.get(v, "") not in ("", "0") for v in FULL_ERROR_ENV):
            raise
        # One line: an instantiation error puts its cause on a second line, as Hydra's does.
        text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"{prog}: error: {type(err).__name__}: {text}", file=sys.stderr)
        print(
            "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
            file=sys.stderr,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run_console(main, "glmx.train")
