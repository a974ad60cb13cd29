"""`ExperimentManager`: turns overrides into run directories, an sbatch script and a
non-blocking submission, and harvests results. Subclass it to customise any step (the lab
tool's ``BaseExperimentManager`` pattern) without forking glmx::

    class MyManager(glmx.cluster.ExperimentManager):
        def setup_lines(self, spec):
            return ["module load cuda/12.4", "source ~/venvs/glmx/bin/activate"]

        def harvest(self, summary):
            return json.loads((Path(summary["run_dir"]) / "eval.json").read_text())
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmx.cluster import _slurm
from glmx.cluster._slurm import ClusterError
from glmx.cluster.script import SlurmSpec, render
from glmx.tracking.record import RunRecord, new_run_id

log = logging.getLogger("glmx.cluster")
SUBMISSION_FILE = "slurm_submission.json"


@dataclass
class Submission:
    """What :meth:`ExperimentManager.submit` did: the job id (``None`` on a dry run), the
    script it wrote, and one run directory and registry id per array task."""

    job_id: str | None
    script: Path
    run_dirs: list[Path]
    run_ids: list[str]
    array: bool
    warnings: list[str] = field(default_factory=list)

    def job_keys(self) -> list[str]:
        """Ids ``squeue``/``scontrol`` accept: ``JOB`` or ``JOB_TASK`` per run."""
        if self.job_id is None:
            return []
        return [
            _slurm.job_key(self.job_id, i if self.array else None)
            for i in range(len(self.run_dirs))
        ]


class ExperimentManager:
    """Submits trainings to SLURM and harvests their results.

    Args:
        root: where run directories go (``<root>/outputs/<date>/<time>`` for one run,
            ``<root>/multirun/<date>/<time>/<n>`` for a sweep, as the Hydra-style runner does).
        command: the training command before the overrides; default
            ``[sys.executable, "-m", "glmx.train"]``.
        resume_args: appended when the run directory holds a committed checkpoint (a requeued
            or resubmitted job); default ``["ckpt_path=last"]`` for ``glmx.train``, else none.
        python: interpreter recorded in the script (default: this one).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = ".",
        command: list[str] | None = None,
        resume_args: list[str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.base_command = list(command) if command else [sys.executable, "-m", "glmx.train"]
        if resume_args is None:
            resume_args = (
                ["ckpt_path=last"] if self.base_command[1:3] == ["-m", "glmx.train"] else []
            )
        self._resume_args = list(resume_args)

    # -- hooks a subclass may override ---------------------------------------------------------
    def command(self, overrides: list[str], run_dir: Path) -> list[str]:
        """argv of one run (the run directory reaches the training as ``$GLMX_RUN_DIR``)."""
        return [*self.base_command, *overrides]

    def resume_args(self) -> list[str]:
        """Arguments appended when the run resumes from its own checkpoint."""
        return list(self._resume_args)

    def setup_lines(self, spec: SlurmSpec) -> list[str]:
        """Shell lines run before the launch (``module load``, venv activation, ``cd``)."""
        return [f"cd {shlex.quote(os.getcwd())}"]

    def expand_sweep(self, overrides: list[str]) -> list[list[str]]:
        """One override list per job (``a=1,2 b=x`` -> two jobs), in the basic sweeper's order."""
        from glmx import _config

        return [list(job) for job in _config.sweep_jobs(overrides, [])]

    def run_dirs(self, count: int, multirun: bool) -> list[Path]:
        """Fresh run directories, laid out like the Hydra-style runner's."""
        stamp = time.strftime("%Y-%m-%d"), time.strftime("%H-%M-%S")
        if not multirun:
            base = self.root / "outputs" / stamp[0] / stamp[1]
            n = 1
            while base.exists():  # two submissions in the same second
                base = self.root / "outputs" / stamp[0] / f"{stamp[1]}_{n}"
                n += 1
            return [base]
        base = self.root / "multirun" / stamp[0] / stamp[1]
        n = 1
        while base.exists():
            base = self.root / "multirun" / stamp[0] / f"{stamp[1]}_{n}"
            n += 1
        return [base / str(i) for i in range(count)]

    def script(
        self, spec: SlurmSpec, runs: list[tuple[Path, list[str]]], output: str, array: bool
    ) -> str:
        """The batch script text (override to post-process it)."""
        return render(spec, runs, output, self.resume_args(), self.setup_lines(spec), array)

    def harvest(self, summary: dict[str, Any]) -> dict[str, float]:
        """Extra metrics for a finished run (e.g. read an eval file); default none."""
        return {}

    # -- the workflow ----------------------------------------------------------------------------
    def submit(
        self,
        overrides: list[str],
        spec: SlurmSpec | None = None,
        multirun: bool = False,
        dry_run: bool = False,
        resume: str | os.PathLike[str] | None = None,
    ) -> Submission:
        """Create run records, write the sbatch script and submit it without waiting.

        ``multirun`` expands sweep overrides into an array job (one task per combination);
        ``resume`` resubmits an existing run directory (it continues from its checkpoint);
        ``dry_run`` writes everything except calling ``sbatch``.
        """
        spec = spec or SlurmSpec()
        spec.validate()
        jobs = self.expand_sweep(overrides) if multirun else [list(overrides)]
        warnings: list[str] = []
        if resume is not None:
            if multirun:
                raise ClusterError(
                    "--resume takes one run directory; it cannot be combined with a sweep (-m)"
                )
            dirs = [Path(resume).resolve()]
            if not RunRecord(dirs[0]).exists():
                raise ClusterError(
                    f"{dirs[0]} holds no glmx run record (glmx-run/events.jsonl); pass a run directory"
                )
            warnings += self._gpu_warnings(dirs[0], spec)
            jobs = [RunRecord(dirs[0]).summary()["overrides"] or list(overrides)]
        else:
            dirs = self.run_dirs(len(jobs), multirun)
        runs = []
        for run_dir, job in zip(dirs, jobs, strict=False):
            run_dir.mkdir(parents=True, exist_ok=True)
            argv = self.command(job, run_dir)
            RunRecord.create(
                run_dir,
                overrides=job,
                command=argv,
                name=f"{spec.job_name}/{run_dir.name}",
                run_id=new_run_id(),
            )
            runs.append((run_dir, argv))
        array = multirun and len(runs) > 1
        if array:
            sweep_dir = dirs[0].parent
            output, script_path = (
                str(sweep_dir / "%a" / "slurm-%A_%a.out"),
                sweep_dir / "submit.sbatch",
            )
        else:
            output, script_path = str(dirs[0] / "slurm-%j.out"), dirs[0] / "submit.sbatch"
        script_path.write_text(self.script(spec, runs, output, array), encoding="utf-8")
        ids = [str(RunRecord(d).summary()["id"]) for d in dirs]
        sub = Submission(None, script_path, dirs, ids, array, warnings)
        for w in warnings:
            log.warning("%s", w)
        if dry_run:
            return sub
        text = _slurm.run(["sbatch", "--parsable", str(script_path)]).strip()
        sub.job_id = text.split(";")[0]
        if not sub.job_id.isdigit():
            raise ClusterError(f"sbatch printed {text!r}, not a job id")
        for i, run_dir in enumerate(dirs):
            RunRecord(run_dir).append(
                "submitted",
                job_id=sub.job_id,
                array_job_id=sub.job_id if array else None,
                array_task_id=i if array else None,
                script=str(script_path),
            )
        (script_path.parent / SUBMISSION_FILE).write_text(
            json.dumps(
                {
                    "job_id": sub.job_id,
                    "script": str(script_path),
                    "run_dirs": [str(d) for d in dirs],
                    "run_ids": ids,
                    "array": array,
                    "submitted": time.time(),
                },
                indent=1,
            ),
            encoding="utf-8",
        )
        return sub

    def _gpu_warnings(self, run_dir: Path, spec: SlurmSpec) -> list[str]:
        from glmx.cluster.env import gpu_type_warning, load_environment

        recorded = next(
            (
                e.get("gpu")
                for e in RunRecord(run_dir).events()
                if e["event"] == "started" and e.get("gpu")
            ),
            None,
        )
        targets = [spec.gpu_type] if spec.gpu_type else []
        if not targets and spec.partition and _slurm.have("sinfo"):
            part = load_environment(self.root).partition(spec.partition)
            targets = sorted(part.gpus) if part else []
        warning = gpu_type_warning(recorded, targets)
        return [warning] if warning else []

    def harvest_all(self, index: Any) -> list[dict[str, Any]]:
        """Refresh ``index`` (a :class:`glmx.tracking.ExperimentIndex`) with job states from
        ``squeue``/``sacct`` and metrics from :meth:`harvest`; returns the updated runs."""
        runs = index.runs() if index.path.exists() else []
        if not runs:
            index.refresh()
            runs = index.runs()
        keys = {
            r["id"]: _slurm.job_key(r["array_job_id"] or r["job_id"], r["array_task_id"])
            for r in runs
            if r.get("job_id")
        }
        states = _slurm.job_states(keys.values()) if keys and _slurm.have("squeue") else {}
        harvested: dict[str, dict[str, Any]] = {}
        for r in runs:
            info: dict[str, Any] = {"harvested_at": time.time()}
            key = keys.get(r["id"])
            state = states.get(key or "", {}).get("state")
            if key is not None:
                info["slurm_state"] = state or "GONE"
                status = _status_from_slurm(r["status"], state)
                if status:
                    info["status"] = status
            if r["status"] in ("done", "failed") or state in _slurm.TERMINAL_STATES:
                info["metrics"] = self.harvest(r)
            harvested[r["id"]] = info
        index.refresh(slurm_states=harvested)
        return index.runs()


def _status_from_slurm(status: str, state: str | None) -> str | None:
    """The registry status SLURM's view implies for a run whose own files say ``status``."""
    if status in ("done", "failed"):
        return None  # the run's own record is authoritative once it ended
    if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"):
        return "preempted" if status == "preempted" else "queued"
    if state in ("RUNNING", "COMPLETING", "CONFIGURING"):
        return "running"
    if state == "COMPLETED":
        return "done" if status == "done" else "failed"
    if state in _slurm.TERMINAL_STATES:
        return "failed"
    if state is None and status in ("queued", "running", "created", "preempted"):
        return "dead"  # gone from squeue (and sacct) without recording an end
    return None
