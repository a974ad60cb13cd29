"""``glmx score``: zero-shot variant effect scores (LLR, embedding distance) and AUPRC."""

from __future__ import annotations

import argparse
import csv
import json
import sys


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``score`` options."""
    parser.add_argument(
        "--ckpt",
        required=True,
        help="run directory, checkpoint directory, or weights file (.safetensors/.bin, glmx or Hugging Face GPN layout)",
    )
    parser.add_argument("--fasta", required=True, help="genome FASTA the variants refer to")
    parser.add_argument(
        "--variants",
        required=True,
        help="variants: .tsv/.csv/.vcf/.parquet with chrom, pos (1-based), ref, alt[, label]",
    )
    parser.add_argument(
        "--out", default=None, help="write the scored table here (TSV; default: stdout)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="variants per forward pass")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)"
    )
    parser.add_argument("--window", type=int, default=512, help="window length (512)")
    parser.add_argument(
        "--no-embeddings", action="store_true", help="skip the embedding distance (3x faster)"
    )
    parser.add_argument(
        "--no-check-ref", action="store_true", help="do not check ref against the genome"
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")


def run(args: argparse.Namespace, command: str) -> int:
    """Scores the variants, writes the table, prints AUPRC when there are labels."""
    import torch

    from glmx.eval import evaluate_scores, load_model, score_variants

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.ckpt, map_location=device)
    scored = score_variants(
        model,
        args.fasta,
        args.variants,
        window=args.window,
        batch_size=args.batch_size,
        device=device,
        embeddings=not args.no_embeddings,
        check_ref=not args.no_check_ref,
        dtype=torch.bfloat16 if args.bf16 else None,
    )
    names = list(scored)
    fh = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(names)
        for i in range(len(scored["pos"])):
            w.writerow([_fmt(scored[n][i]) for n in names])
    finally:
        if args.out:
            fh.close()
    if "label" in scored:
        metrics = evaluate_scores(scored)
        out = sys.stderr if not args.out else sys.stdout
        print(
            json.dumps(
                {
                    "n": len(scored["pos"]),
                    "positives": int(scored["label"].sum()),
                    "auprc": metrics,
                },
                indent=2,
            ),
            file=out,
        )
    return 0


def _fmt(v: object) -> str:
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        return f"{float(v):.6g}"
    if type(v).__name__ == "bool_" or isinstance(v, bool):
        return str(int(bool(v)))
    return str(v)
