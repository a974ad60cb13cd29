"""sbatch script generation: resources, the launch (srun per GPU or torchrun per node), the
preemption signal trap, resume detection and an exit record for the experiment registry."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from glmx.cluster._slurm import ClusterError

LAUNCHERS = ("srun", "torchrun")


@dataclass
class SlurmSpec:
    """Resources and launch settings of one submission (all optional except what SLURM needs).

    ``gpus`` is per node; ``launcher="srun"`` starts one task per GPU (``RANK`` from
    ``SLURM_PROCID``), ``"torchrun"`` one ``torch.distributed.run`` per node with a c10d
    rendezvous at ``MASTER_ADDR``. ``signal`` is sent ``seconds`` before the time limit
    (``"USR2@120"``); the batch shell traps it and asks the training to checkpoint and requeue.
    """

    job_name: str = "glmx"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    gpus: int = 0
    gpu_type: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None
    signal: str = "USR2@120"
    launcher: str = "srun"
    array_parallelism: int | None = None
    extra_directives: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`ClusterError` naming the bad field."""
        if self.launcher not in LAUNCHERS:
            raise ClusterError(f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}")
        if self.nodes < 1 or self.gpus < 0:
            raise ClusterError(
                f"nodes must be >= 1 and gpus >= 0, got nodes={self.nodes} gpus={self.gpus}"
            )
        name, _, secs = self.signal.partition("@")
        name = name.removeprefix("B:").removeprefix("SIG")
        if not name.isalnum() or (secs and not secs.isdigit()):
            raise ClusterError(
                f"signal must look like 'USR2@120' (name@seconds), got {self.signal!r}"
            )

    @property
    def signal_name(self) -> str:
        """The signal's name without ``SIG``, ``B:`` or ``@seconds`` (``"USR2"``)."""
        return self.signal.partition("@")[0].removeprefix("B:").removeprefix("SIG")

    @property
    def tasks_per_node(self) -> int:
        """Tasks per node: one per GPU under srun (at least one), one under torchrun."""
        return 1 if self.launcher == "torchrun" else max(1, self.gpus)


def directives(spec: SlurmSpec, output: str, array_size: int | None) -> list[str]:
    """The ``#SBATCH`` lines for ``spec``."""
    spec.validate()
    name, _, secs = spec.signal.partition("@")
    lines = [
        f"--job-name={spec.job_name}",
        f"--nodes={spec.nodes}",
        f"--ntasks-per-node={spec.tasks_per_node}",
    ]
    for flag, value in (
        ("partition", spec.partition),
        ("account", spec.account),
        ("qos", spec.qos),
        ("cpus-per-task", spec.cpus_per_task),
        ("mem", spec.mem),
        ("time", spec.time),
    ):
        if value is not None:
            lines.append(f"--{flag}={value}")
    if spec.gpus:
        lines.append(f"--gres=gpu:{spec.gpu_type + ':' if spec.gpu_type else ''}{spec.gpus}")
    # B: sends the signal to the batch shell only; its trap relays it to the training (torchrun
    # would die on an unhandled USR2, so the relay is a file the training polls).
    lines.append(f"--signal=B:{spec.signal_name}" + (f"@{secs}" if secs else ""))
    lines += ["--requeue", "--open-mode=append", f"--output={output}"]
    if array_size is not None:
        par = f"%{spec.array_parallelism}" if spec.array_parallelism else ""
        lines.append(f"--array=0-{array_size - 1}{par}")
    lines += [d.removeprefix("#SBATCH ").strip() for d in spec.extra_directives]
    return ["#SBATCH " + d for d in lines]


def _launch(spec: SlurmSpec) -> list[str]:
    if spec.launcher == "torchrun":
        return [
            f'srun --kill-on-bad-exit=1 --ntasks-per-node=1 "${{CMD[0]}}" -m torch.distributed.run '
            f'--nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node={max(1, spec.gpus)} --rdzv-backend=c10d '
            '--rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="$SLURM_JOB_ID" "${CMD[@]:1}" &',
        ]
    return [
        f"srun --kill-on-bad-exit=1 --ntasks-per-node={spec.tasks_per_node} bash -c "
        "'export RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID; exec \"$@\"' "
        'glmx-task "${CMD[@]}" &',
    ]


def render(
    spec: SlurmSpec,
    runs: list[tuple[Path, list[str]]],
    output: str,
    resume_args: list[str],
    setup: list[str],
    array: bool,
) -> str:
    """The complete batch script for ``runs`` (``[(run_dir, argv)]``; an array when ``array``)."""
    if not runs:
        raise ClusterError("nothing to submit: no runs")
    q = shlex.quote
    out = [
        "#!/bin/bash",
        "# Generated by glmx (glmx.cluster.ExperimentManager); resubmit with: sbatch <this file>",
    ]
    out += directives(spec, output, len(runs) if array else None)
    out += ["", "set -uo pipefail", "export PYTHONUNBUFFERED=1"]
    out += [f"export {k}={q(v)}" for k, v in spec.env.items()]
    out += [*setup, *spec.setup, "", 'case "${SLURM_ARRAY_TASK_ID:-0}" in']
    for i, (run_dir, argv) in enumerate(runs):
        out.append(
            f"  {i}) export GLMX_RUN_DIR={q(str(run_dir))}; CMD=({' '.join(map(q, argv))}) ;;"
        )
    out += [
        '  *) echo "glmx: no command for array task ${SLURM_ARRAY_TASK_ID:-0}" >&2; exit 2 ;;',
        "esac",
    ]
    out += [
        'GLMX_FLAG="$GLMX_RUN_DIR/glmx-run/requeue-requested"',
        f'export GLMX_REQUEUE_SIGNAL={spec.signal_name} GLMX_REQUEUE_FILE="$GLMX_FLAG"',
        'mkdir -p "$GLMX_RUN_DIR/glmx-run"; rm -f "$GLMX_FLAG"',
        'if [ -f "$GLMX_RUN_DIR/checkpoints/latest" ]; then',
        f"  export GLMX_RESUME=1; CMD+=({' '.join(map(q, resume_args))})",
        "fi",
        'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        'export MASTER_PORT="$((10000 + SLURM_JOB_ID % 20000))"',
        'echo "glmx: job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0} on $(hostname) at $(date -Is): ${CMD[*]}"',
        f'glmx_relay() {{ echo "glmx: SIG{spec.signal_name} at $(date -Is): checkpoint and requeue" >&2; touch "$GLMX_FLAG"; }}',
        f"trap glmx_relay {spec.signal_name}",
        *_launch(spec),
        "glmx_pid=$!",
        "# `wait` returns early when a trapped signal arrives; keep waiting for the real exit.",
        'while true; do wait "$glmx_pid"; rc=$?; kill -0 "$glmx_pid" 2>/dev/null || break; done',
        'printf \'{"event":"exit","time":%s,"rc":%d,"job_id":"%s","restart_count":%d}\\n\' '
        '"$(date +%s)" "$rc" "$SLURM_JOB_ID" "${SLURM_RESTART_COUNT:-0}" >> "$GLMX_RUN_DIR/glmx-run/events.jsonl"',
        'exit "$rc"',
    ]
    return "\n".join(out) + "\n"
