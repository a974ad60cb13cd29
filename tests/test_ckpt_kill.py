"""`kill -9` a process many times while it saves; the latest checkpoint must always load intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

from glmx.ckpt import CheckpointManager

# A zygote imports torch once (it never runs a tensor op, so forking it is safe) and forks one
# saver per round; the test SIGKILLs the saver at a random moment. The saver resumes from "last",
# then saves forever; every tensor of step s holds s, so a torn or mixed checkpoint is caught by
# content as well as by checksum.
ZYGOTE = textwrap.dedent(
    """
    import os, sys
    import torch
    from glmx.ckpt import CheckpointManager

    def saver(run):
        mgr = CheckpointManager(run, save_total_limit=2, keep_best=1, monitor="loss")
        try:
            step = mgr.load("last", components=["trainer"])["components"]["trainer"]["step"]
        except Exception:
            step = 0
        while True:
            step += 1
            s = float(step)
            model = {f"w{i}": torch.full((256, 1024), s) for i in range(8)}
            comps = {"optimizer": {"m": torch.full((4096,), s), "lr": s}, "trainer": {"step": step}}
            mgr.save(step, model, comps, metrics={"loss": 1.0 / step if step % 3 else 100.0})

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    saver(arg)
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(arg), 0)
            print(status, flush=True)
    """
)


def _check(run: Path, previous: int) -> int:
    mgr = CheckpointManager(run, save_total_limit=2, keep_best=1, monitor="loss")
    leftovers = [
        p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".checkpoint-")
    ]
    assert leftovers == [], leftovers
    state = mgr.load("last")
    step = state["step"]
    assert step >= previous, (step, previous)
    assert state["components"]["trainer"]["step"] == step
    assert all(torch.equal(t, torch.full_like(t, float(step))) for t in state["model"].values())
    assert torch.equal(state["components"]["optimizer"]["m"], torch.full((4096,), float(step)))
    kept = [c.step for c in mgr.list()]
    assert step in kept and len(kept) <= 3, kept
    return step


def test_kill_during_saves_never_corrupts_latest(tmp_path: Path) -> None:
    rng = random.Random(0)
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    last, killed = 0, 0
    try:
        for _ in range(12):
            zygote.stdin.write(f"fork {tmp_path}\n")
            pid = int(zygote.stdout.readline())
            time.sleep(rng.uniform(0.2, 0.6))
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"reap {pid}\n")
            status = int(zygote.stdout.readline())
            killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            if (tmp_path / "checkpoints" / "latest").exists():
                last = _check(tmp_path, last)
    finally:
        zygote.kill()
        zygote.wait()
    assert killed == 12, "every saver must die by SIGKILL (none may crash on its own)"
    assert last > 12, f"savers made too little progress (last step {last})"
