"""``glmx slurm submit``: write an sbatch script into the run directory and submit it."""

from __future__ import annotations

import argparse
import importlib
import shlex


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of ``glmx slurm``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("submit", help="submit a training (or a -m sweep as an array job)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. experiment=x model.lr=1e-3")
    p.add_argument(
        "-m",
        "--multirun",
        "--array",
        dest="multirun",
        action="store_true",
        help="expand sweep overrides (a=1,2) into an array job",
    )
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--qos")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per node")
    p.add_argument("--gpu-type", help="gres GPU type, e.g. a100")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--time", help="time limit, e.g. 4:00:00")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem")
    p.add_argument(
        "--signal", default="USR2@120", help="preemption signal and lead time (default USR2@120)"
    )
    p.add_argument(
        "--launcher",
        choices=("srun", "torchrun"),
        default="srun",
        help="srun: one task per GPU; torchrun: one torchrun per node",
    )
    p.add_argument("--array-parallelism", type=int, help="max array tasks running at once")
    p.add_argument("--job-name", default="glmx")
    p.add_argument(
        "--command",
        dest="train_command",
        help="training command before the overrides (default: python -m glmx.train)",
    )
    p.add_argument(
        "--resume-args",
        help="arguments added when resuming from a checkpoint (default: ckpt_path=last)",
    )
    p.add_argument(
        "--root", help="where outputs/ and multirun/ go (default: the project directory)"
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="resubmit an existing run; it continues from its checkpoint",
    )
    p.add_argument("--manager", metavar="MODULE:CLASS", help="an ExperimentManager subclass to use")
    p.add_argument("--dry-run", action="store_true", help="write the script, do not submit")
    p.add_argument("--print", dest="print_script", action="store_true", help="print the script")


def _manager_class(spec: str | None) -> type:
    from glmx.cluster import ClusterError, ExperimentManager

    if not spec:
        return ExperimentManager
    module, _, name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ClusterError(
            f"--manager {spec!r}: cannot import {name or '?'} from {module}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, ExperimentManager)):
        raise ClusterError(
            f"--manager {spec!r} is not a subclass of glmx.cluster.ExperimentManager"
        )
    return cls


def run(args: argparse.Namespace, command: str) -> int:
    """Submit and print the job id and run directories."""
    from glmx.cluster import SlurmSpec

    spec = SlurmSpec(
        job_name=args.job_name,
        partition=args.partition,
        account=args.account,
        qos=args.qos,
        nodes=args.nodes,
        gpus=args.gpus,
        gpu_type=args.gpu_type,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        time=args.time,
        signal=args.signal,
        launcher=args.launcher,
        array_parallelism=args.array_parallelism,
    )
    manager = _manager_class(args.manager)(
        root=args.root or args.project_dir,
        command=shlex.split(args.train_command) if args.train_command else None,
        resume_args=shlex.split(args.resume_args) if args.resume_args is not None else None,
    )
    sub = manager.submit(
        args.overrides, spec, multirun=args.multirun, dry_run=args.dry_run, resume=args.resume
    )
    if args.print_script:
        print(sub.script.read_text(encoding="utf-8"), end="")
    for warning in sub.warnings:
        print(f"warning: {warning}")
    if sub.job_id is None:
        print(f"dry run: wrote {sub.script}")
    else:
        kind = (
            f"array job {sub.job_id} ({len(sub.run_dirs)} tasks)"
            if sub.array
            else f"job {sub.job_id}"
        )
        print(f"submitted {kind}; script {sub.script}")
    for run_id, run_dir in zip(sub.run_ids, sub.run_dirs, strict=False):
        print(f"  {run_id}  {run_dir}")
    return 0
