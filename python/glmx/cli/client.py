"""``glmx client models|embed|logits|score``: call a running ``glmx serve``."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``client`` subcommands."""
    parser.add_argument("--url", default="http://127.0.0.1:8010", help="server URL")
    parser.add_argument("--token", default=None, help="bearer token (default: $GLMX_SERVE_TOKEN)")
    # --url/--token are accepted after the action too (`glmx client models --url ...`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="server URL")
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("models", parents=[common], help="the served model and its limits (JSON)")
    emb = sub.add_parser(
        "embed", parents=[common], help="embeddings of sequences (JSON list of vectors)"
    )
    emb.add_argument("sequences", nargs="+", metavar="SEQ", help="DNA sequences ('-': stdin lines)")
    emb.add_argument("--pooling", choices=["mean", "max", "none"], default="mean")
    lg = sub.add_parser("logits", parents=[common], help="A/C/G/T probabilities per position (TSV)")
    lg.add_argument("sequence", metavar="SEQ")
    lg.add_argument("--mask", default="", help="0-based positions to mask, comma-separated")
    lg.add_argument("--separately", action="store_true", help="mask each position in its own pass")
    sc = sub.add_parser("score", parents=[common], help="variant scores (TSV)")
    sc.add_argument("--variants", help="table with chrom, pos (1-based), ref, alt")
    sc.add_argument("--ref", help="reference window (with --alt)")
    sc.add_argument("--alt", help="alternative window (one base differs)")
    sc.add_argument("--no-embeddings", action="store_true", help="skip embed_dist")


def run(args: argparse.Namespace, command: str) -> int:
    """Runs one request and prints the answer (``glmx.cli.main`` stops quietly when the
    reader of stdout, e.g. ``head``, has gone)."""
    _run(args)
    return 0


def _run(args: argparse.Namespace) -> None:
    from glmx.errors import GlmxError
    from glmx.serve import require

    require("httpx", feature="glmx client")
    from glmx.serve.client import Client

    with Client(args.url, token=args.token) as client:
        if args.action == "models":
            print(json.dumps(client.models(), indent=1))
        elif args.action == "embed":
            seqs = args.sequences
            if seqs == ["-"]:
                seqs = [line.strip() for line in sys.stdin if line.strip()]
            print(json.dumps(client.embeddings(seqs, pooling=args.pooling)))
        elif args.action == "logits":
            try:
                mask = [int(x) for x in args.mask.split(",") if x.strip()]
            except ValueError:
                raise GlmxError(
                    f"--mask: expected comma-separated integers, got {args.mask!r}"
                ) from None
            out = client.logits(args.sequence, mask, args.separately)
            print("pos\tbase\tmasked\tA\tC\tG\tT")
            masked = set(out["masked"])
            for i, probs in enumerate(out["probs"]):
                cells = "\t".join(f"{p:.6g}" for p in probs)
                print(f"{i}\t{args.sequence[i]}\t{int(i in masked)}\t{cells}")
        else:
            _score(client, args)


def _score(client, args: argparse.Namespace) -> None:
    from glmx.errors import GlmxError

    if bool(args.variants) == bool(args.ref or args.alt):
        raise GlmxError("give --variants FILE, or --ref and --alt windows")
    if args.variants:
        from glmx.eval import read_variants

        cols = read_variants(args.variants)
        rows = [
            {k: cols[k][i] for k in ("chrom", "pos", "ref", "alt")} for i in range(len(cols["pos"]))
        ]
        scores = client.score(variants=rows, embeddings=not args.no_embeddings)
        keys = ["chrom", "pos", "ref", "alt"]
    else:
        if not (args.ref and args.alt):
            raise GlmxError("--ref and --alt go together")
        rows = [{}]
        scores = client.score(
            windows=[{"ref": args.ref, "alt": args.alt}], embeddings=not args.no_embeddings
        )
        keys = []
    names = list(scores[0]) if scores else ["llr"]
    print("\t".join(keys + names))
    for row, s in zip(rows, scores, strict=True):
        print("\t".join([str(row[k]) for k in keys] + [f"{s[n]:.6g}" for n in names]))
