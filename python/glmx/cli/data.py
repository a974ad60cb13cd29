"""``glmx data promoters|windows``: prepare GPN-format training shards from a genome;
``glmx data digits OUT``: scikit-learn's handwritten digits as an ImageFolder of PNGs."""

from __future__ import annotations

import argparse


def _chroms(text: str | None) -> list[str]:
    return [c for c in (text or "").split(",") if c]


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``data`` sub-commands."""
    sub = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    prom = sub.add_parser(
        "promoters",
        help="TSS -256/+256 of protein-coding mRNAs (GPN-Animal-Promoter)",
        description="Windows around the TSS of every protein-coding mRNA transcript "
        "(strand-aware), merged, N runs removed, full windows only, soft-masking kept.",
    )
    prom.add_argument("--gtf", required=True, help="annotation: GTF or GFF3 (.gz/.zst allowed)")
    prom.add_argument("--upstream", type=int, default=256, help="bases upstream of the TSS (256)")
    prom.add_argument(
        "--downstream", type=int, default=256, help="bases downstream of the TSS (256)"
    )
    win = sub.add_parser(
        "windows",
        help="whole-genome tiling",
        description="Full windows over every N-free run of every sequence, soft-masking kept.",
    )
    win.add_argument(
        "--stride",
        type=int,
        default=None,
        help="distance between window starts (default: --window)",
    )
    for p in (prom, win):
        p.add_argument("--fasta", required=True, help="genome FASTA (.gz/.zst allowed)")
        p.add_argument("--out", required=True, help="output directory")
        p.add_argument("--window", type=int, default=512, help="window length in bp (512)")
        p.add_argument("--val-chroms", default="", help="comma-separated validation chromosomes")
        p.add_argument("--test-chroms", default="", help="comma-separated test chromosomes")
        p.add_argument(
            "--val-fraction",
            type=float,
            default=0.0,
            help="hold out this fraction of blocks for validation",
        )
        p.add_argument(
            "--test-fraction",
            type=float,
            default=0.0,
            help="hold out this fraction of blocks for test",
        )
        p.add_argument(
            "--block-size", type=int, default=100_000, help="block size in bp for fraction splits"
        )
        p.add_argument("--shard-size", type=int, default=100_000, help="rows per shard")
        p.add_argument("--seed", type=int, default=42, help="shuffle / block choice seed")
    dig = sub.add_parser(
        "digits",
        help="scikit-learn's 1,797 handwritten digits as an ImageFolder of PNGs",
        description="OUT/{train,val,test}/{0..9}/NNNN.png: stratified fixed-seed split, "
        "8x8 digits upscaled to --size pixels (needs glmx[vision]).",
    )
    dig.add_argument("out", metavar="OUT", help="output directory")
    dig.add_argument("--size", type=int, default=32, help="image side in pixels (32)")
    dig.add_argument("--seed", type=int, default=0, help="split seed (0)")
    dig.add_argument("--val-fraction", type=float, default=0.15, help="validation share (0.15)")
    dig.add_argument("--test-fraction", type=float, default=0.15, help="test share (0.15)")


def run(args: argparse.Namespace, command: str) -> int:
    """Runs the chosen recipe and prints windows per split."""
    if args.recipe == "digits":
        from glmx.image import write_digits

        counts = write_digits(
            args.out,
            size=args.size,
            seed=args.seed,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
        )
        for split, n in counts.items():
            print(f"{split:<11} {n:>9} images   {args.out}/{split}")
        return 0
    from glmx import prep

    common = dict(
        window=args.window,
        val_chroms=_chroms(args.val_chroms),
        test_chroms=_chroms(args.test_chroms),
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        block_size=args.block_size,
        shard_size=args.shard_size,
        seed=args.seed,
    )
    if args.recipe == "promoters":
        result = prep.promoters(
            args.fasta,
            args.gtf,
            args.out,
            upstream=args.upstream,
            downstream=args.downstream,
            **common,
        )
    else:
        result = prep.windows(args.fasta, args.out, stride=args.stride, **common)
    for split, n in result.counts.items():
        print(f"{split:<11} {n:>9} windows  {result.out_dir / split}")
    print(f"summary     {result.out_dir / 'prep_summary.json'}")
    return 0
