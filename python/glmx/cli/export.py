"""``glmx export hf CKPT_OR_RUN OUT``: a glmx model as a Hugging Face GPN directory."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``export`` options."""
    parser.add_argument("format", choices=["hf"], help="hf: Hugging Face GPN (gpn package)")
    parser.add_argument(
        "ckpt",
        metavar="CKPT_OR_RUN",
        help="run directory, checkpoint directory, weights file or Hugging Face GPN directory",
    )
    parser.add_argument("out", metavar="OUT", help="directory to write")
    parser.add_argument(
        "--dilation-cycle",
        type=int,
        default=None,
        help="dilation cycle when the source does not record it (weights only; default 8)",
    )
    parser.add_argument(
        "--no-tokenizer", action="store_true", help="do not write the tokenizer files"
    )
    parser.add_argument(
        "--allow-pickle", action="store_true", help="accept pickle weights (.bin/.pt)"
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUT")


def run(args: argparse.Namespace, command: str) -> int:
    """Loads the model and writes config.json, model.safetensors and the tokenizer files."""
    from pathlib import Path

    from glmx.errors import GlmxError
    from glmx.serve import require

    require(
        "safetensors",
        *(() if args.no_tokenizer else ("transformers", "tokenizers")),
        feature="glmx export hf",
    )
    from glmx.eval import load_model
    from glmx.models.gpn import GPN
    from glmx.models.gpn_hf import save_hf_dir

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise GlmxError(f"OUT '{out}' is a file, not a directory; give a directory to write")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise GlmxError(f"'{out}' exists and is not empty; pass --force to write into it")
    net = load_model(args.ckpt, allow_pickle=args.allow_pickle)
    if not isinstance(net, GPN):
        raise GlmxError(f"'{args.ckpt}' is not a GPN; only GPN models export to Hugging Face")
    if args.dilation_cycle is not None:
        if args.dilation_cycle < 1:
            raise GlmxError(f"--dilation-cycle must be >= 1, got {args.dilation_cycle}")
        net.cfg.dilation_cycle = args.dilation_cycle
    try:
        save_hf_dir(net, out, tokenizer=not args.no_tokenizer)
    except OSError as err:
        why = err.strerror or str(err)
        where = f"'{err.filename}': " if err.filename and str(err.filename) != str(out) else ""
        raise GlmxError(f"cannot create or write OUT '{out}' ({where}{why})") from None
    n = sum(p.numel() for p in net.parameters())
    print(f"wrote {out} (GPNForMaskedLM, {n:,} parameters, {net.cfg.n_layers} layers)")
    print(
        "load it with: import gpn; gpn.register_auto_classes('gpn'); "
        f"transformers.AutoModelForMaskedLM.from_pretrained('{out}')"
    )
    return 0
