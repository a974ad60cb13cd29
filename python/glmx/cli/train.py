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
import subprocess
import sys
from pathlib import Path
from typing import Any

from glmx._optional import MissingDependencyError, console_script
from glmx.errors import GlmxError

__all__ = ["add_arguments", "fit", "run", "train_command"]


def fit(trainer: Any, model: Any, **kwargs: Any) -> Any:
    """``trainer.fit(model, **kwargs)``; the ``main`` target of scaffolded configs is a
    ``!partial`` of this, so ``Project(cfg)()`` (and ``glmx train``) trains."""
    trainer.fit(model, **kwargs)
    return trainer


# `Project(cfg)()` calls a `main` that is a partial of a training entry point (README).
fit.__glmx_entry_point__ = True  # type: ignore[attr-defined]


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
        "--resume",
        action="store_true",
        help="continue the latest run of this config (template projects: runs/<name>-*/)",
    )
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
    """Hydra-style unless this is a template project: a ``meta.yaml``, a ``-t`` config or a
    ``configs/`` folder without a Hydra ``configs/train.yaml``. A directory with none of these
    (an empty one) trains from the configs shipped with glmx, as ``python -m glmx.train``."""
    root = Path(args.project_dir)
    if args.hydra or (root / "configs" / "train.yaml").is_file():
        return args.hydra or not (root / "meta.yaml").is_file()
    # configs/ without train.yaml is a template project's config folder
    return (
        not (root / "meta.yaml").is_file() and not args.config and not (root / "configs").is_dir()
    )


def train_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that runs this training as a separate process."""
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else []
    env = {"CUDA_VISIBLE_DEVICES": ",".join(devices)} if devices else {}
    root = os.path.abspath(args.project_dir)
    if _is_hydra(args):
        name = (args.config or "train").removesuffix(".yaml")
        configs = os.path.join(root, "configs")
        # Without a configs/ of the project's, python -m glmx.train uses the shipped tree.
        where = ["-cp", configs] if os.path.isdir(configs) else []
        module = ["-m", "glmx.train", *where, "-cn", name]
    else:
        module = [
            "-m",
            "glmx.cli",
            "-p",
            root,
            *(["-t", args.config] if args.config else []),
            "train",
            *(["--resume"] if getattr(args, "resume", False) else []),
        ]
    if len(devices) > 1:
        launcher = [
            console_script("torchrun") or "torchrun",
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


def _run_dirs(root: Path, name: str) -> list[Path]:
    """Earlier runs of config ``name`` (``runs/<name>-<timestamp>/``), oldest first."""
    runs = root / "runs"
    if not runs.is_dir():
        return []
    found = [
        d
        for d in runs.iterdir()
        if d.is_dir() and d.name.startswith(f"{name}-") and d.name[len(name) + 1 :][:1].isdigit()
    ]
    return sorted(found, key=lambda d: d.name)


def _new_run_dir(root: Path, name: str) -> Path:
    import time

    base = root / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # two runs started within one second
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    path.mkdir(parents=True)
    return path


def _train_template(args: argparse.Namespace) -> int:
    """A template project: every run gets its own ``runs/<config>-<timestamp>/`` (passed to the
    config as ``output_dir``) with the rendered config saved there; ``--resume`` (or
    ``ckpt_path=last``) continues the latest run of the config from its last checkpoint."""
    from glmx.project import Project

    values = _template_values(args.overrides)
    ckpt_path = values.pop("ckpt_path", None)
    resume = bool(getattr(args, "resume", False)) or ckpt_path == "last"
    root = Path(os.path.abspath(args.project_dir))
    proj = Project(args.config, str(root), **values)
    if "main" not in proj.targets:
        raise GlmxError(
            f"config {proj.config} has no 'main' target; targets: {', '.join(proj.targets)}"
        )
    name = Path(args.config or proj.meta.default_config or proj.config).stem
    if "output_dir" not in values:
        previous = _run_dirs(root, name) if resume else []
        if resume and not previous:
            raise GlmxError(
                f"--resume: no earlier run of '{name}' in {root / 'runs'}; start one with "
                f"`glmx train{' -t ' + args.config if args.config else ''}`"
            )
        run_dir = previous[-1] if previous else _new_run_dir(root, name)
        values["output_dir"] = str(run_dir)
        proj = Project(args.config, str(root), **values)
        (run_dir / "config.yaml").write_text(proj.pp(), encoding="utf-8")
        print(f"run directory: {run_dir}", file=sys.stderr, flush=True)
    if resume:
        ckpt_path = ckpt_path or "last"
    main = proj("main", **values)
    if callable(main):
        main(**({"ckpt_path": ckpt_path} if ckpt_path else {}))
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
    # this environment's TensorBoard (its bin/ need not be on PATH); 127.0.0.1: it has no auth
    tb = [sys.executable, "-m", "tensorboard.main"]
    cmd = [*tb, *logdir, "--host", "127.0.0.1", "--port", str(args.port)]
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    from glmx._optional import available

    if not available("tensorboard"):
        raise MissingDependencyError(
            "glmx tb needs the Python package 'tensorboard', which is not installed: "
            "pip install 'glmx[tb]' (or run `glmx tb --dry-run`)"
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
        if console_script("torchrun") is None:
            raise GlmxError("torchrun not found beside this Python or on PATH; it ships with torch")
        return subprocess.call(cmd, env={**os.environ, **env})
    os.environ.update(env)  # before torch is imported: select the device
    return _train_hydra(cmd) if _is_hydra(args) else _train_template(args)
