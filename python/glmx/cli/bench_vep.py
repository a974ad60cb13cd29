"""``glmx bench-vep``: the zero-shot variant-effect proxy on a genome and its annotation."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from glmx.errors import DataError


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``bench-vep`` options."""
    parser.add_argument(
        "--ckpt",
        required=True,
        help="model as `glmx score --ckpt` takes it (run/checkpoint directory, weights file), or "
        "a model config .yaml (e.g. configs/model/gpn_tiny.yaml) for an untrained model",
    )
    parser.add_argument("--fasta", required=True, help="genome FASTA (plain/.gz/.zst)")
    parser.add_argument("--gtf", required=True, help="its annotation: GTF or GFF3 (.gz allowed)")
    parser.add_argument(
        "--regions",
        default=None,
        help="only variants here: a `glmx data` output directory (its held-out blocks/chromosomes) "
        "or a BED file (default: the whole genome)",
    )
    parser.add_argument(
        "--splits", default="validation,test", help="held-out splits of --regions (a prep dir)"
    )
    parser.add_argument("--margin", type=int, default=None, help="bp from a region edge (window)")
    parser.add_argument("--max-per-class", type=int, default=500, help="SNVs per class (500)")
    parser.add_argument(
        "--background-distance", type=int, default=100, help="background bp from annotation"
    )
    parser.add_argument(
        "--match", choices=("substitution", "trinucleotide"), default="trinucleotide",
        help="background matched on ref>alt with both flanking bases (default) or ref>alt only",
    )  # fmt: skip
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples (200)")
    parser.add_argument("--window", type=int, default=512, help="scoring window (512)")
    parser.add_argument("--batch-size", type=int, default=32, help="variants per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    parser.add_argument("--no-embeddings", action="store_true", help="LLR only (3x faster)")
    parser.add_argument("--seed", type=int, default=0, help="sampling/bootstrap/init seed")
    parser.add_argument("--plot", default=None, help="write the plot here (.png/.svg/.pdf)")
    parser.add_argument("--variants-out", default=None, help="write the scored SNVs (TSV)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output")


def untrained_model(path: str | Path, seed: int = 0) -> Any:
    """A randomly initialised GPN from a model config YAML (``config:`` of a GPNModule config,
    or GPNConfig fields at the top level).

    Raises:
        DataError: for an unreadable file or a key GPNConfig does not have.
    """
    import torch
    import yaml

    from glmx.models.gpn import GPN, GPNConfig

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"{path}: cannot read the model config ({err})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: a model config must be a mapping")
    cfg = doc.get("config", doc)
    known = {f.name for f in dataclasses.fields(GPNConfig)}
    extra = [k for k in cfg if k not in known and not str(k).startswith("_")]
    if extra:
        raise DataError(
            f"{path}: key {extra[0]!r} is not a GPNConfig field ({', '.join(sorted(known))})"
        )
    torch.manual_seed(seed)
    return GPN(GPNConfig(**{k: v for k, v in cfg.items() if k in known})).eval()


def run(args: argparse.Namespace, command: str) -> int:
    """Builds, scores and prints the benchmark (table or JSON rows)."""
    from glmx.eval.annotation_benchmark import check_options

    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    # before importing torch or reading anything: a typo fails in milliseconds
    check_options(
        window=args.window, batch_size=args.batch_size, n_boot=args.n_boot,
        background_distance=args.background_distance, max_per_class=args.max_per_class,
        margin=args.margin, splits=splits, plot=args.plot, option_names=True,
    )  # fmt: skip
    for name in ("fasta", "gtf"):
        if not Path(getattr(args, name)).is_file():
            raise DataError(f"--{name} {getattr(args, name)}: file not found")
    if args.regions and not Path(args.regions).exists():
        raise DataError(f"--regions {args.regions}: no such BED file or prep directory")
    import torch

    from glmx.eval import annotation_benchmark, load_model

    if args.device is not None:
        check_options(device=args.device, option_names=True)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = Path(args.ckpt)
    if ckpt.suffix in (".yaml", ".yml"):
        model = untrained_model(ckpt, args.seed).to(device)
    else:
        model = load_model(ckpt, map_location=device)
    res = annotation_benchmark(
        model, args.fasta, args.gtf, regions=args.regions,
        splits=splits, margin=args.margin,
        background_distance=args.background_distance, max_per_class=args.max_per_class,
        match=args.match, window=args.window, batch_size=args.batch_size, device=device,
        embeddings=not args.no_embeddings, n_boot=args.n_boot, seed=args.seed, plot=args.plot,
    )  # fmt: skip
    if args.variants_out:
        v = res.variants
        with open(args.variants_out, "w") as fh:
            fh.write("\t".join(v) + "\n")
            for i in range(len(v["pos"])):
                fh.write("\t".join(_fmt(v[k][i]) for k in v) + "\n")
    if args.format == "json":
        print(json.dumps(res.rows, indent=1))
    else:
        print(res.table())
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


def _fmt(v: Any) -> str:
    return f"{float(v):.6g}" if type(v).__name__.startswith("float") else str(v)
