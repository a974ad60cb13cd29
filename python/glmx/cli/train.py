"""``glmx train`` (in-process or torchrun) and ``glmx tb`` (TensorBoard on 127.0.0.1).

Two project layouts: a template project (``meta.yaml``) trains by materializing the config's
``main`` target and calling it (:func:`fit` is the usual target); a Hydra-style project
(``configs/train.yaml``, or ``--hydra``) runs ``python -m glmx.train -cp configs -cn train``.
With ``-d 0,1`` one process per device is launched with ``torchrun``; inside such a process
(``LOCAL_RANK`` set) ``glmx train`` always runs in-process.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from glmx.errors import GlmxError

__all__ = ["add_arguments", "fit", "run", "train_command"]


def fit(trainer: Any, model: Any, **kwargs: Any) -> Any:
    """``trainer.fit(model, **kwargs)``; the ``main`` target of scaffolded configs is a
    ``!partial`` of this, so ``Project(cfg)("main")()`` trains."""
    trainer.fit(model, **kwargs)
    return trainer


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of ``train`` and ``tb``."""
    if command == "tb":
        parser.add_argument(
            "--all", action="store_true", help="all runs below the project, not just the newest"
        )
        parser.add_argument(
            "--port", type=int, default=6006, help="port on 127.0.0.1 (default: 6006)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print the command instead of running it"
        )
        parser.add_argument(
            "logdir", nargs="?", default=None, help="run directory (default: newest run)"
        )
        return
    parser.add_argument(
        "-d",
        "--devices",
        default=None,
        help="comma-separated CUDA device ids; 2+ ids launch torchrun",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the exact command and exit")
    parser.add_argument(
        "--hydra", action="store_true", help="Hydra-style project: run python -m glmx.train"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="NAME=VALUE template/!var values, or Hydra overrides",
    )


def _is_hydra(args: argparse.Namespace) -> bool:
    root = Path(args.project_dir)
    return args.hydra or (
        not (root / "meta.yaml").is_file() and (root / "configs" / "train.yaml").is_file()
    )


def train_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that runs this training as a separate process."""
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else []
    env = {"CUDA_VISIBLE_DEVICES": ",".join(devices)} if devices else {}
    root = os.path.abspath(args.project_dir)
    if _is_hydra(args):
        name = (args.config or "train").removesuffix(".yaml")
        module = ["-m", "glmx.train", "-cp", os.path.join(root, "configs"), "-cn", name]
    else:
        module = [
            "-m",
            "glmx.cli",
            "-p",
            root,
            *(["-t", args.config] if args.config else []),
            "train",
        ]
    if len(devices) > 1:
        launcher = [
            shutil.which("torchrun") or "torchrun",
            "--standalone",
            "--nproc_per_node",
            str(len(devices)),
        ]
        return [*launcher, *module, *args.overrides], env
    return [sys.executable, *module, *args.overrides], env


def _template_values(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise GlmxError(
                f"override '{item}' must be NAME=VALUE for a template project (Hydra syntax needs --hydra)"
            )
        out[name] = yaml.safe_load(value) if value else ""
    return out


def _train_template(args: argparse.Namespace) -> int:
    from glmx.project import Project

    values = _template_values(args.overrides)
    proj = Project(args.config, os.path.abspath(args.project_dir), **values)
    if "main" not in proj.targets:
        raise GlmxError(
            f"config {proj.config} has no 'main' target; targets: {', '.join(proj.targets)}"
        )
    main = proj("main", **values)
    if callable(main):
        main()
    elif hasattr(main, "run"):
        main.run()
    else:
        raise GlmxError(
            f"target 'main' of {proj.config} built a {type(main).__name__}, which is neither callable nor has run(); "
            "make it e.g. `!partial:glmx.cli.train:fit {trainer: ..., model: ..., train_dataloaders: ...}`"
        )
    return 0


def _train_hydra(cmd: list[str]) -> int:
    argv = cmd[cmd.index("glmx.train") + 1 :]
    saved = sys.argv
    sys.argv = ["glmx.train", *argv]
    try:
        runpy.run_module("glmx.train", run_name="__main__", alter_sys=True)
    except ModuleNotFoundError as err:
        if err.name == "glmx.train":
            raise GlmxError("glmx.train is not available in this installation") from err
        raise
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def _tb(args: argparse.Namespace) -> int:
    root = Path(args.logdir or args.project_dir)
    runs = sorted(
        {p.parent for p in root.rglob("events.out.tfevents.*")},
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    if not runs:
        raise GlmxError(f"no TensorBoard event files below {root}")
    if args.all:
        spec = ",".join(f"{os.path.relpath(d, root)}:{d}" for d in runs)
        logdir = ["--logdir_spec", spec]
    else:
        logdir = ["--logdir", str(runs[0])]
    # 127.0.0.1 only: TensorBoard has no authentication
    cmd = ["tensorboard", *logdir, "--host", "127.0.0.1", "--port", str(args.port)]
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    if shutil.which("tensorboard") is None:
        raise GlmxError(
            "tensorboard is not installed; `pip install tensorboard`, or run `glmx tb --dry-run`"
        )
    return subprocess.call(cmd)


def run(args: argparse.Namespace, command: str) -> int:
    """Runs ``train`` or ``tb``."""
    if command == "tb":
        return _tb(args)
    cmd, env = train_command(args)
    if args.dry_run:
        print(shlex.join([*(f"{k}={v}" for k, v in env.items()), *cmd]))
        return 0
    inside_launcher = "LOCAL_RANK" in os.environ
    if cmd[0] != sys.executable and not inside_launcher:
        if shutil.which("torchrun") is None:
            raise GlmxError("torchrun not found on PATH; it ships with torch (activate the venv)")
        return subprocess.call(cmd, env={**os.environ, **env})
    os.environ.update(env)  # before torch is imported: select the device
    return _train_hydra(cmd) if _is_hydra(args) else _train_template(args)
