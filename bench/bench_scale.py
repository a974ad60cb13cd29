"""S1-S3: scaling out on CPU.

S1  per-rank memory of parameters + gradients + optimizer state, FSDP vs DDP, for a 56.6M-param
    DnaTransformer (hidden 768, 8 blocks) on 2 CPU processes (gloo), measured from the tensors
    each rank holds right after an optimizer step, plus each process' peak RSS;
S2  training tokens/s on CPU of GPN tiny and transformer tiny (batch 8 x 256, fp32): glmx.Trainer
    and a raw PyTorch loop (the anchor) on the same pre-built batches, interleaved, medians;
S3  torch.compile: first-step cost and steady tokens/s of transformer tiny (8 x 256), eager vs
    compiled;
S4  (CUDA only, not in the default set) tokens/s per GPU and MFU of a shipped model config with
    bf16 + compile: ``--only s4 --model gpn_animal_promoter --batch 64``.

    .venv/bin/python bench/bench_scale.py [--only s1,s2,s3] [--steps 30]

S1 launches itself with torchrun (``--worker``) twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

BIG = {"hidden_size": 768, "n_layers": 8, "n_heads": 12, "intermediate_size": 2048}
TINY_T = {"hidden_size": 64, "n_layers": 4, "n_heads": 4, "intermediate_size": 192}
TINY_G = {"hidden_size": 32, "n_layers": 4, "dilation_cycle": 4}


def _batches(n: int, batch: int, length: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        tokens = torch.randint(3, 7, (batch, length), generator=g)
        masked = torch.rand(batch, length, generator=g) < 0.15
        out.append(
            {
                "input_ids": torch.where(masked, torch.ones_like(tokens), tokens),
                "labels": torch.where(masked, tokens, torch.full_like(tokens, -100)),
                "loss_weight": torch.ones(batch, length),
            }
        )
    return out


class _Loader:
    def __init__(self, items: list) -> None:
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _nbytes(t: torch.Tensor) -> int:
    from torch.distributed.tensor import DTensor

    if isinstance(t, DTensor):
        t = t.to_local()
    return t.numel() * t.element_size()


# -- S1 ---------------------------------------------------------------------------------------
def worker(strategy: str, out: str) -> None:
    """One rank of S1: two steps of the big transformer, then count what this rank holds."""
    import glmx
    from glmx.models import DnaTransformer

    class Measured(DnaTransformer):
        def on_before_zero_grad(self, optimizer):  # after the step: grads and state exist
            params = list(self.parameters())
            self.memory = {
                "params": sum(_nbytes(p) for p in params),
                "grads": sum(_nbytes(p.grad) for p in params if p.grad is not None),
                "optimizer": sum(
                    _nbytes(v)
                    for s in optimizer.state.values()
                    for v in s.values()
                    if isinstance(v, torch.Tensor)
                ),
            }

    torch.manual_seed(0)
    model = Measured(BIG, warmup_steps=0)
    n_params = sum(p.numel() for p in model.parameters())
    trainer = glmx.Trainer(
        max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
        enable_model_summary=False, accelerator="cpu", strategy=strategy,
        num_sanity_val_steps=0, default_root_dir=tempfile.mkdtemp(),
    )  # fmt: skip
    trainer.fit(model, _Loader(_batches(2, 2, 64, seed=trainer.global_rank)))
    mem = dict(model.memory)
    mem["total"] = sum(mem.values())
    mem["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mem["n_params"] = n_params
    Path(f"{out}.{trainer.global_rank}.json").write_text(json.dumps(mem))


def s1() -> None:
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = {}
    for strategy in ("ddp", "fsdp"):
        out = tmp / strategy
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", __file__, "--worker", strategy, str(out)]  # fmt: skip
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
        rows[strategy] = [json.loads(Path(f"{out}.{r}.json").read_text()) for r in (0, 1)]
    mb = 2**20
    print(f"S1 per-rank memory, {rows['ddp'][0]['n_params'] / 1e6:.1f}M params, 2 ranks (MiB)")
    print(f"  {'':6} {'params':>8} {'grads':>8} {'optim':>8} {'total':>8} {'peak RSS':>9}")
    for strategy, ranks in rows.items():
        for r, m in enumerate(ranks):
            print(
                f"  {strategy:4} r{r} {m['params'] / mb:8.1f} {m['grads'] / mb:8.1f} "
                f"{m['optimizer'] / mb:8.1f} {m['total'] / mb:8.1f} {m['peak_rss'] / mb:9.1f}"
            )
    ratio = max(m["total"] for m in rows["fsdp"]) / max(m["total"] for m in rows["ddp"])
    rss = max(m["peak_rss"] for m in rows["fsdp"]) / max(m["peak_rss"] for m in rows["ddp"])
    print(f"  fsdp/ddp: params+grads+optimizer {ratio:.3f}, peak RSS {rss:.3f}")


# -- S2, S3 -----------------------------------------------------------------------------------
def _module(kind: str):
    from glmx.models import DnaTransformer, GPNModule

    torch.manual_seed(0)
    if kind == "gpn":
        return GPNModule(TINY_G, warmup_steps=0)
    return DnaTransformer(TINY_T, warmup_steps=0)


def _glmx_run(kind: str, batches: list, warmup: int, compile: bool = False) -> tuple[float, float]:
    """(first-step seconds, steady tokens/s) through glmx.Trainer."""
    import glmx

    marks: list[float] = []

    class Timer(glmx.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            marks.append(time.perf_counter())

    trainer = glmx.Trainer(
        max_steps=len(batches), logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
        compile=compile, callbacks=[Timer()], default_root_dir=tempfile.mkdtemp(),
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(_module(kind), _Loader(batches))
    tokens = sum(b["input_ids"].numel() for b in batches[warmup:])
    return marks[0] - start, tokens / (marks[-1] - marks[warmup - 1])


def _raw_run(kind: str, batches: list, warmup: int) -> float:
    from glmx.models import weighted_mlm_loss

    module = _module(kind)
    opt = module.configure_optimizers()["optimizer"]
    start = 0.0
    for i, b in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        loss = weighted_mlm_loss(module(b["input_ids"]), b["labels"], b["loss_weight"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return sum(b["input_ids"].numel() for b in batches[warmup:]) / (time.perf_counter() - start)


def s2(steps: int, repeats: int = 3, batch: int = 8, length: int = 256) -> None:
    batches = _batches(steps + 5, batch, length)
    print(
        f"S2 training tokens/s on CPU ({torch.get_num_threads()} threads, batch {batch} x "
        f"{length}, median of {repeats} interleaved runs)"
    )
    for kind, name in (("gpn", "GPN tiny"), ("transformer", "transformer tiny")):
        raw, ours = [], []
        for _ in range(repeats):
            raw.append(_raw_run(kind, batches, 5))
            ours.append(_glmx_run(kind, batches, 5)[1])
        r, o = statistics.median(raw), statistics.median(ours)
        print(f"  {name:17} glmx {o:9.0f}  raw torch {r:9.0f}  glmx/raw {o / r:.3f}")


def s3(steps: int, batch: int = 8, length: int = 256) -> None:
    batches = _batches(steps + 5, batch, length)
    first_e, eager = _glmx_run("transformer", batches, 5)
    first_c, compiled = _glmx_run("transformer", batches, 5, compile=True)
    print(f"S3 torch.compile, transformer tiny (batch {batch} x {length})")
    print(f"  first step: eager {first_e:.2f} s, compiled {first_c:.2f} s")
    print(f"  tokens/s:   eager {eager:.0f}, compiled {compiled:.0f}, ratio {compiled / eager:.3f}")


# -- S4 (GPU) ----------------------------------------------------------------------------------
#: bf16 dense peak TFLOP/s by device-name fragment (MFU denominator).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def _flops_per_token(module: torch.nn.Module, length: int) -> float:
    """Training FLOPs per token: 6N (each weight once per position, forward + backward) plus,
    for a transformer, 12 * layers * hidden * length for the attention scores and mixing."""
    n = sum(p.numel() for p in module.parameters())
    cfg = getattr(getattr(module, "model", None), "cfg", None)
    attn = 12 * cfg.n_layers * cfg.hidden_size * length if hasattr(cfg, "n_heads") else 0
    return 6.0 * n + attn


def s4(model_name: str, batch: int, steps: int, peak: float | None) -> None:
    if not torch.cuda.is_available():
        print("S4 needs a CUDA GPU (tokens/s per GPU and MFU); skipped")
        return
    import yaml

    import glmx
    from glmx.models import DnaTransformer, GPNModule

    cfg = yaml.safe_load(
        (Path(__file__).parents[1] / "configs/model" / f"{model_name}.yaml").read_text()
    )
    cls = {"glmx.models.GPNModule": GPNModule, "glmx.models.DnaTransformer": DnaTransformer}
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    torch.manual_seed(0)
    module = cls[cfg["_target_"]](**kwargs)
    name = torch.cuda.get_device_name()
    peak = peak or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    length, warmup = 512, 10
    batches = _batches(steps + warmup, batch, length)
    marks: list[float] = []

    class Timer(glmx.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            torch.cuda.synchronize()
            marks.append(time.perf_counter())

    trainer = glmx.Trainer(
        max_steps=len(batches), logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, accelerator="gpu", devices=1,
        precision="bf16-mixed", compile=True, callbacks=[Timer()],
        default_root_dir=tempfile.mkdtemp(),
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, _Loader(batches))
    tokens = batch * length * (len(marks) - warmup)
    tps = tokens / (marks[-1] - marks[warmup - 1])
    flops = _flops_per_token(module, length)
    print(f"S4 {model_name} on {name}: bf16 + compile, batch {batch} x {length}")
    print(f"  first step (compile) {marks[0] - start:.1f} s; {tps:,.0f} tokens/s per GPU")
    if peak:
        print(
            f"  {flops / 1e9:.3f} GFLOP/token -> MFU {tps * flops / (peak * 1e12):.1%} of {peak} TFLOP/s"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="s1,s2,s3")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--model", default="gpn_animal_promoter", help="S4: configs/model name")
    parser.add_argument("--batch", type=int, default=64, help="S4: sequences per GPU")
    parser.add_argument("--peak-tflops", type=float, default=None, help="S4: MFU denominator")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    parts = args.only.split(",")
    if "s1" in parts:
        s1()
    if "s2" in parts:
        s2(args.steps)
    if "s3" in parts:
        s3(args.steps)
    if "s4" in parts:
        s4(args.model, args.batch, args.steps, args.peak_tflops)


if __name__ == "__main__":
    main()
