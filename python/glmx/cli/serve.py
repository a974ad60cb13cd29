"""``glmx serve MODEL``: embeddings, nucleotide probabilities and variant scores over HTTP."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``serve`` options."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="run directory, checkpoint directory, weights file or Hugging Face GPN directory",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8010, help="port (8010)")
    parser.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' (default: $GLMX_SERVE_TOKEN, else none)",
    )
    parser.add_argument(
        "--name", default=None, help="model id in responses (default: MODEL's name)"
    )
    parser.add_argument("--fasta", default=None, help="genome FASTA for chrom/pos variant scoring")
    parser.add_argument("--window", type=int, default=512, help="scoring window in bp (512)")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)"
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--max-seq-len", type=int, default=4096, help="longest sequence (4096)")
    parser.add_argument("--max-items", type=int, default=64, help="items per request (64)")
    parser.add_argument("--max-body-bytes", type=int, default=2_000_000, help="request body limit")
    parser.add_argument("--max-batch", type=int, default=64, help="rows per forward pass (64)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="batching wait (5 ms)")
    parser.add_argument("--max-queue", type=int, default=1024, help="rows waiting before 429")
    parser.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    parser.add_argument("--no-check-ref", action="store_true", help="do not check ref bases")
    parser.add_argument("--allow-pickle", action="store_true", help="accept pickle weights")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    import socket

    from glmx.errors import GlmxError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise GlmxError(f"--host {host}: cannot resolve it ({err})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as err:
            raise GlmxError(
                f"cannot listen on {host}:{port} ({err.strerror}); choose another --port"
            ) from None


def run(args: argparse.Namespace, command: str) -> int:
    """Loads the model (and genome) and serves until interrupted."""
    from pathlib import Path

    from glmx.errors import GlmxError
    from glmx.serve import require

    require("fastapi", "uvicorn", "pydantic", feature="glmx serve")
    for opt in (
        "port",
        "window",
        "max_seq_len",
        "max_items",
        "max_body_bytes",
        "max_batch",
        "max_queue",
    ):
        if getattr(args, opt) < 1:
            raise GlmxError(f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}")
    if args.port > 65535:
        raise GlmxError(f"--port must be a TCP port, 1..65535, got {args.port}")
    if not args.max_wait_ms >= 0:  # also NaN
        raise GlmxError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    if args.threads is not None and args.threads < 1:
        raise GlmxError(f"--threads must be >= 1, got {args.threads}")
    _check_port(args.host, args.port)
    import torch
    import uvicorn

    from glmx.eval import load_model
    from glmx.serve.app import ServeSettings, create_app

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise GlmxError(f"--device {device}: CUDA is not available on this machine")
    except RuntimeError as err:
        raise GlmxError(f"--device {device}: {err}") from None
    net = load_model(args.model, map_location=device, allow_pickle=args.allow_pickle)
    genome = None
    if args.fasta:
        from glmx.prep.genome import read_fasta

        genome = read_fasta(args.fasta)
    token = args.token if args.token is not None else os.environ.get("GLMX_SERVE_TOKEN") or None
    if not _is_loopback(args.host) and token is None:
        print(
            f"glmx serve: warning: listening on {args.host} without a token; anyone who can "
            "reach it can use the model (set --token or GLMX_SERVE_TOKEN)",
            file=sys.stderr,
        )
    settings = ServeSettings(
        name=args.name or Path(args.model).resolve().name,
        window=args.window,
        max_seq_len=args.max_seq_len,
        max_items=args.max_items,
        max_body_bytes=args.max_body_bytes,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        batching=not args.no_batching,
        token=token,
        check_ref=not args.no_check_ref,
        genome_path=str(args.fasta) if args.fasta else None,
    )
    app = create_app(
        net, settings, genome, device=device, dtype=torch.bfloat16 if args.bf16 else None
    )
    n = sum(p.numel() for p in net.parameters())
    print(
        f"glmx serve: {settings.name} ({n:,} parameters, {device}) on "
        f"http://{args.host}:{args.port} (batching {'on' if settings.batching else 'off'})",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
