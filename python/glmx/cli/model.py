"""``glmx model test [CONFIG_OR_CHECKPOINT]``: build a model and run one training step on a
random batch: parameter count, memory, step time, finite loss and gradients."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

PRESETS = ("tiny", "released")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the ``model`` subcommands."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("test", help="forward + backward on a random batch")
    t.add_argument(
        "source",
        nargs="?",
        default=None,
        metavar="CONFIG_OR_CHECKPOINT",
        help="model YAML (a _target_ node, or a config with a 'model' node), a checkpoint, "
        "run or Hugging Face directory, a weights file, or a preset: tiny, released "
        "(default: target 'model' of the project config given with -t, else tiny)",
    )
    # the global options also work after `test` (`glmx model test -t cfg.yaml`)
    t.add_argument("-p", "--project-dir", default=argparse.SUPPRESS, help="project directory")
    t.add_argument("-t", "--config", default=argparse.SUPPRESS, help="project config")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    t.add_argument("--batch-size", type=int, default=2, help="sequences per batch (2)")
    t.add_argument("--seq-len", type=int, default=512, help="tokens per sequence (512)")
    t.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (3)")
    t.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")
    t.add_argument("--allow-pickle", action="store_true", help="accept pickle weights")
    t.add_argument("--seed", type=int, default=0, help="random batch seed")


def build(source: str, allow_pickle: bool = False) -> Any:
    """The model ``source`` names (see the ``model test`` help)."""
    from glmx.errors import ConfigError
    from glmx.models import GPN, GPNConfig

    if source in PRESETS:
        return GPN(GPNConfig.tiny() if source == "tiny" else GPNConfig())
    p = Path(source)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        import yaml

        from glmx.hydra import instantiate

        try:
            node = yaml.safe_load(p.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
            what = getattr(err, "problem", None) or str(err)
            raise ConfigError(f"{where}: not valid YAML: {' '.join(str(what).split())}") from None
        if (
            isinstance(node, dict)
            and "_target_" not in node
            and isinstance(node.get("model"), dict)
        ):
            node = node["model"]
        if not isinstance(node, dict) or "_target_" not in node:
            raise ConfigError(f"{p}: expected a '_target_' node (or a 'model:' node with one)")
        try:
            return instantiate(node)
        except Exception as err:  # noqa: BLE001 - any failure of the user's target is theirs
            # Instantiation errors carry the target and the cause on separate lines.
            why = " ".join(str(err).split())
            raise ConfigError(f"{p}: cannot build {node['_target_']}: {why}") from None
    if p.exists():
        from glmx.eval import load_model

        return load_model(p, allow_pickle=allow_pickle)
    raise ConfigError(
        f"'{source}' is not a preset ({', '.join(PRESETS)}), a YAML file or an existing "
        "checkpoint path"
    )


def run(args: argparse.Namespace, command: str) -> int:
    """Runs the test; exit 1 when the loss or a gradient is not finite."""
    import torch

    from glmx.errors import GlmxError
    from glmx.models.gpn import weighted_mlm_loss

    for opt in ("batch_size", "seq_len", "steps"):
        if getattr(args, opt) < 1:
            raise GlmxError(f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise GlmxError(f"--device {args.device}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GlmxError(f"--device {device}: CUDA is not available on this machine")
    t0 = time.perf_counter()
    if args.source is None and getattr(args, "config", None):
        from glmx.project import Project

        args.source = f"{args.config} (target 'model')"
        model = Project(args.config, project_dir=args.project_dir)("model")
    else:
        args.source = args.source or "tiny"
        model = build(args.source, args.allow_pickle)
    if not isinstance(model, torch.nn.Module):
        raise GlmxError(f"'{args.source}' built a {type(model).__name__}, not a torch module")
    model = model.to(device).train()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    param_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    print(f"model: {type(model).__module__}.{type(model).__name__} from {args.source}")
    print(f"parameters: {n_params:,} ({n_train:,} trainable, {param_mib:.1f} MiB)")
    print(f"device: {device}; build {build_s:.2f}s")
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(3, 7, (args.batch_size, args.seq_len), generator=g)
    masked = torch.rand(ids.shape, generator=g) < 0.15
    masked[:, 0] = True
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    inputs = torch.where(masked, torch.ones_like(ids), ids)
    weight = torch.ones(ids.shape)
    inputs, labels, weight = inputs.to(device), labels.to(device), weight.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, loss = [], None
    amp = args.bf16 and device.type == "cuda"
    for step in range(args.steps + 1):
        model.zero_grad(set_to_none=True)
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = model(inputs)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
            raise GlmxError(
                f"the model's output is not (batch, length, vocab) logits: {type(out).__name__}"
            )
        loss = weighted_mlm_loss(logits, labels, weight)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > 0:
            times.append(time.perf_counter() - t)
    assert loss is not None
    times.sort()
    median = times[len(times) // 2]
    tokens = args.batch_size * args.seq_len
    print(
        f"batch: {args.batch_size} x {args.seq_len} tokens; step (forward + backward): "
        f"median {median * 1000:.1f} ms over {args.steps}, {tokens / median:,.0f} tokens/s"
    )
    print(_memory(device))
    bad = [
        n for n, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()
    ]
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    print(
        f"loss: {loss.item():.4f} (uniform over the vocabulary: {torch.log(torch.tensor(float(logits.shape[-1]))).item():.4f})"
    )
    if not torch.isfinite(loss) or bad:
        print(
            f"glmx model test: FAILED: loss {loss.item()}, non-finite gradients in {bad[:5]}",
            file=sys.stderr,
        )
        return 1
    if no_grad:
        print(f"note: {len(no_grad)} parameters got no gradient, e.g. {no_grad[:3]}")
    print("ok: loss and gradients are finite")
    return 0


def _memory(device: Any) -> str:
    import torch

    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        return f"memory: peak {peak:,.0f} MiB allocated on {device}"
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"memory: process peak RSS {rss:,.0f} MiB (CPU)"
