"""The job runner behind ``python -m glmx.train``: Hydra's command line and output layout.

``run(task_fn, argv, config_path, config_name)`` parses ``-m``, ``--cfg job|hydra|all``,
``--resolve``, ``--info defaults|searchpath|all``, ``-cn``, ``-cp``, ``-cd`` and overrides,
then either prints and exits or runs ``task_fn(cfg)`` once per job. A run writes
``<hydra.run.dir>/.hydra/{config,hydra,overrides}.yaml`` (default ``outputs/<date>/<time>``);
a sweep writes ``<hydra.sweep.dir>/multirun.yaml`` and one ``<n>/`` per job. The working
directory is not changed. Children (DDP ranks) reuse the parent's directory through
``GLMX_RUN_DIR``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import functools
import logging
import logging.config
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from glmx.hydra.compose import compose_raw, reset_clock, resolvers, search_path

RUN_DIR_ENV = "GLMX_RUN_DIR"
log = logging.getLogger("glmx.runner")


class Config(dict):
    """A resolved config: a ``dict`` whose keys also read as attributes (``cfg.trainer``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key '{key}'") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def to_config(value: Any) -> Any:
    """Wraps nested dicts as :class:`Config`."""
    if isinstance(value, dict):
        return Config({k: to_config(v) for k, v in value.items()})
    if isinstance(value, list):
        return [to_config(v) for v in value]
    return value


class BasicLauncher:
    """Runs jobs one after another in this process (the only launcher glmx ships)."""


class BasicSweeper:
    """Cartesian product of the sweep overrides, first override varying slowest."""


def parser() -> argparse.ArgumentParser:
    """The runner's command line (Hydra's flags)."""
    p = argparse.ArgumentParser(add_help=True, description="Compose a config and run the job.")
    p.add_argument(
        "overrides", nargs="*", help="key=value, +key=value, ++key=value, ~key, group=option"
    )
    p.add_argument("-m", "--multirun", action="store_true", help="run a sweep as several jobs")
    p.add_argument("-c", "--cfg", choices=["job", "hydra", "all"], help="print the config and exit")
    p.add_argument(
        "-r", "--resolve", action="store_true", help="resolve interpolations in --cfg output"
    )
    p.add_argument(
        "-i", "--info", nargs="?", const="all", choices=["all", "defaults", "searchpath", "config"]
    )
    p.add_argument("-cn", "--config-name", help="primary config name")
    p.add_argument("-cp", "--config-path", help="primary config directory")
    p.add_argument(
        "-cd", "--config-dir", action="append", default=[], help="extra config directory"
    )
    return p


def _dump(data: Any) -> str:
    """YAML as Hydra writes it: a string that Hydra's reader would take for a float (``1e-3``)
    or a bool (``y``) is quoted, so ``.hydra/config.yaml`` and ``--cfg`` read back the same."""
    import yaml

    return yaml.dump(
        data,
        Dumper=_hydra_dumper(),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )


@functools.cache  # one dumper class per process, not one per dump
def _hydra_dumper() -> Any:
    import re

    import yaml

    class HydraDumper(yaml.SafeDumper):
        """PyYAML's safe dumper plus OmegaConf's extra float and bool spellings."""

    HydraDumper.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
            |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    HydraDumper.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
    )
    return HydraDumper


def _job_part(composed: Any, which: str, resolve: bool) -> dict[str, Any]:
    skip = [] if which in ("all", "hydra") else ["hydra"]
    data = composed.resolve(resolvers(), skip) if resolve else composed.raw()
    if which == "job":
        data.pop("hydra", None)
    elif which == "hydra":
        data = {"hydra": data.get("hydra", {})}
    return data


def _setup_logging(hydra_cfg: dict[str, Any]) -> None:
    spec = hydra_cfg.get("job_logging")
    if not isinstance(spec, dict) or not spec:
        return
    try:
        import colorlog  # noqa: F401
    except ImportError:
        for f in (spec.get("formatters") or {}).values():
            if isinstance(f, dict) and f.get("()") == "colorlog.ColoredFormatter":
                f.pop("()")
                f.pop("log_colors", None)
                f["format"] = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    try:
        logging.config.dictConfig(spec)
    except (ValueError, TypeError, AttributeError, ImportError) as e:
        logging.basicConfig(level=logging.INFO)
        log.warning("job_logging config not applied (%s); using basic logging", e)


def _write_run_files(out: Path, composed: Any, overrides: list[str], subdir: str) -> None:
    meta = out / subdir
    meta.mkdir(parents=True, exist_ok=True)
    raw = composed.raw()
    hydra_node = raw.pop("hydra", {})
    (meta / "config.yaml").write_text(_dump(raw))
    (meta / "hydra.yaml").write_text(_dump({"hydra": composed.resolve(resolvers(), [])["hydra"]}))
    (meta / "overrides.yaml").write_text(_dump(task_overrides(overrides)))
    del hydra_node


def task_overrides(overrides: list[str]) -> list[str]:
    """The overrides of the job itself, as Hydra writes them to ``overrides.yaml``: those of
    ``hydra.*`` keys and ``hydra/`` groups (``hydra.run.dir=...``) are Hydra's own."""
    out = []
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0].split("@", 1)[0].strip()
        if key != "hydra" and not key.startswith(("hydra.", "hydra/")):
            out.append(o)
    return out


def _run_job(task_fn: Callable[[Any], Any], composed: Any, overrides: list[str]) -> Any:
    resolved = composed.resolve(resolvers(), [])
    hydra_cfg = resolved.pop("hydra", {})
    out = Path(hydra_cfg["runtime"]["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    subdir = hydra_cfg.get("output_subdir")
    if subdir:
        _write_run_files(out, composed, overrides, str(subdir))
    _setup_logging(hydra_cfg)
    from glmx.hydra.verbose import apply_verbose  # hydra.verbose=true: DEBUG (#21)

    apply_verbose(hydra_cfg.get("verbose"))
    # Set for the job's lifetime only, so processes it launches (DDP ranks) share the directory
    # while a later job in this process (a sweep, a notebook) composes its own.
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(out)
    # hydra.job.chdir=true: the job runs inside its output directory, as in Hydra (the
    # default, null, keeps the working directory, as Hydra 1.2+ does).
    home = os.getcwd() if (hydra_cfg.get("job") or {}).get("chdir") is True else None
    if home is not None:
        os.chdir(out)
    try:
        return task_fn(to_config(resolved))
    finally:
        if home is not None:
            os.chdir(home)
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous


def _maybe_submit(
    args: argparse.Namespace,
    name: str,
    cdir: str,
    overrides: list[str],
    common: dict[str, Any],
    default_name: str,
    default_path: str,
) -> Any:
    """With ``hydra/launcher=slurm`` the job (or sweep) is submitted, not run here."""
    composed = compose_raw(name, overrides, cdir, multirun=args.multirun, **common)
    launcher = composed.select("hydra.launcher", resolvers()) or {}
    if launcher.get("_target_") != "glmx.cluster.launcher.SlurmLauncher":
        return None
    from glmx.cluster.launcher import launch

    return launch(launcher, overrides, args.multirun, name, cdir, (default_name, default_path))


def _config_mode_multirun(name: str, overrides: list[str], sp: list[tuple[str, str]]) -> bool:
    """``hydra.mode: MULTIRUN`` written in the config (hparams_search configs set it) makes a
    sweep without ``-m``, as in Hydra."""
    from glmx import _config
    from glmx.errors import GlmxError

    try:
        raw = _config.compose_config(name, sp, list(overrides), True, True)
        return raw.select("hydra.mode", resolvers()) == "MULTIRUN"
    except GlmxError:  # the run's own compose reports it, with the usual context
        return False


def run(
    task_fn: Callable[[Any], Any],
    argv: Sequence[str] | None = None,
    config_path: str | os.PathLike[str] = "configs",
    config_name: str = "train",
    job_name: str | None = None,
) -> Any:
    """Runs ``task_fn(cfg)`` as ``python -m glmx.train`` does; returns its result (a list of
    results for ``-m``), or ``None`` after ``--cfg`` / ``--info``."""
    args = parser().parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    name = args.config_name or config_name
    cdir = args.config_path or str(config_path)
    overrides = list(args.overrides)
    common = dict(extra_dirs=args.config_dir, job_name=job_name)
    if args.cfg or args.info:
        composed = compose_raw(name, overrides, cdir, multirun=args.multirun, **common)
        if args.info in ("all", "searchpath"):
            print(composed.searchpath)
        if args.info in ("all", "defaults"):
            print("Defaults List\n*************")
            for path, pkg, parent in composed.defaults:
                print(f"| {path:<40} | {pkg or '<global>':<30} | {parent or '':<20} |")
        if args.info in ("all", "config"):
            print(_dump(_job_part(composed, "job", False)), end="")
        if args.cfg:
            print(_dump(_job_part(composed, args.cfg, args.resolve)), end="")
        return None
    reset_clock()
    # hydra.mode: MULTIRUN in the config sweeps without -m: decided before any single-run
    # compose, which would refuse `x=1,2` as ambiguous.
    if not args.multirun:
        args.multirun = _config_mode_multirun(name, overrides, search_path(cdir, args.config_dir))
    submitted = _maybe_submit(args, name, cdir, overrides, common, config_name, str(config_path))
    if submitted is not None:
        return submitted
    if not args.multirun:
        reuse = os.environ.get(RUN_DIR_ENV)
        composed = compose_raw(name, overrides, cdir, output_dir=reuse, **common)
        return _run_job(task_fn, composed, overrides)
    from glmx import _config
    from glmx.hydra import optuna_sweeper

    sweep = compose_raw(name, overrides, cdir, multirun=True, **common)
    sweep_dir = Path(str(sweep.select("hydra.sweep.dir", resolvers()))).resolve()
    sweeper = sweep.select("hydra.sweeper", resolvers()) or {}
    if sweeper.get("_target_") in optuna_sweeper.TARGETS:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "multirun.yaml").write_text(_dump(sweep.raw()))

        def job(job_overrides: list[str], num: int) -> Any:
            c = compose_raw(name, job_overrides, cdir, multirun=True, job_num=num, **common)
            return _run_job(task_fn, c, job_overrides)

        return optuna_sweeper.sweep(sweeper, overrides, job, sweep_dir)
    jobs = _config.sweep_jobs(overrides, search_path(cdir, args.config_dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "multirun.yaml").write_text(_dump(sweep.raw()))
    results = []
    for num, job in enumerate(jobs):
        log.info("Launching job #%d: %s", num, " ".join(job))
        composed = compose_raw(name, job, cdir, multirun=True, job_num=num, **common)
        results.append(_run_job(task_fn, composed, job))
    return results
