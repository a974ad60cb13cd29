"""Zero-shot variant effect scores of a masked DNA language model (GPN / TraitGym recipe)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import torch

from glmx.errors import DataError
from glmx.eval.loading import as_network
from glmx.eval.metrics import auprc, auprc_by_chrom
from glmx.eval.variants import Columns, from_frame, read_variants, resolve_chrom
from glmx.prep.genome import read_fasta

log = logging.getLogger("glmx.eval")

MASK, UNK = 1, 2
_LUT = np.full(256, UNK, dtype=np.int64)
for _i, _b in enumerate("ACGT"):
    _LUT[ord(_b)] = _LUT[ord(_b.lower())] = 3 + _i
_BASE_ID = {b: 3 + i for i, b in enumerate("ACGT")}
# complement of token ids: a<->t (3<->6), c<->g (4<->5); special tokens unchanged
_COMP = torch.tensor([0, 1, 2, 6, 5, 4, 3])
PREDICTORS = ("minus_llr", "abs_llr", "embed_dist")


def _windows(genome: dict[str, str], cols: Columns, window: int, check_ref: bool) -> np.ndarray:
    half = window // 2
    out = np.full((len(cols["pos"]), window), UNK, dtype=np.int64)
    bad = []
    for i, (c, pos, ref, alt) in enumerate(
        zip(cols["chrom"], cols["pos"], cols["ref"], cols["alt"], strict=False)
    ):
        if len(ref) != 1 or len(alt) != 1 or ref not in _BASE_ID or alt not in _BASE_ID:
            raise DataError(
                f"variant {i} ({c}:{pos} {ref}>{alt}) is not an SNV of A/C/G/T; only SNVs are scored"
            )
        seq = genome[resolve_chrom(str(c), genome)]
        p = int(pos) - 1
        if not 0 <= p < len(seq):
            raise DataError(
                f"variant {i} ({c}:{pos}) lies outside the chromosome (length {len(seq)})"
            )
        if check_ref and seq[p].upper() != ref:
            bad.append(f"{c}:{pos} ref {ref} but the genome has {seq[p].upper()}")
        lo, hi = p - half, p - half + window
        # out-of-chromosome positions stay [UNK], as N padding does in GPN
        chunk = seq[max(lo, 0) : min(hi, len(seq))].encode("ascii")
        out[i, max(lo, 0) - lo : max(lo, 0) - lo + len(chunk)] = _LUT[
            np.frombuffer(chunk, np.uint8)
        ]
    if bad:
        raise DataError(
            f"{len(bad)} variant(s) disagree with the genome's reference base, e.g. {bad[:3]}; "
            "positions must be 1-based on the same assembly (check_ref=False skips this check)"
        )
    return out


def _rc(ids: torch.Tensor) -> torch.Tensor:
    return _COMP.to(ids.device)[ids.flip(-1)]


@torch.inference_mode()
def _score_batch(
    net: torch.nn.Module,
    ids: torch.Tensor,
    ref: torch.Tensor,
    alt: torch.Tensor,
    center: int,
    embed: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    b = ids.shape[0]
    L = ids.shape[1]
    rc_center = L - 1 - center
    rows = torch.arange(b, device=ids.device)
    comp = _COMP.to(ids.device)
    fwd = ids.clone()
    fwd[:, center] = MASK
    rev = _rc(ids)
    rev[:, rc_center] = MASK
    logits = net(torch.cat([fwd, rev])).float()
    llr_f = logits[rows, center, alt] - logits[rows, center, ref]
    llr_r = logits[b + rows, rc_center, comp[alt]] - logits[b + rows, rc_center, comp[ref]]
    llr = (llr_f + llr_r) / 2
    if not embed:
        return llr, None
    ref_ids, alt_ids = ids.clone(), ids.clone()
    ref_ids[:, center], alt_ids[:, center] = ref, alt
    h = net.hidden_states(torch.cat([ref_ids, alt_ids, _rc(ref_ids), _rc(alt_ids)])).float()
    h_ref_f, h_alt_f, h_ref_r, h_alt_r = h.split(b)
    dist_f = torch.linalg.vector_norm(h_ref_f - h_alt_f, dim=(1, 2))
    dist_r = torch.linalg.vector_norm(h_ref_r - h_alt_r, dim=(1, 2))
    return llr, (dist_f + dist_r) / 2


def score_variants(
    model: Any,
    genome_fasta: str | os.PathLike[str] | dict[str, str],
    variants: Any,
    *,
    window: int = 512,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    embeddings: bool = True,
    check_ref: bool = True,
    dtype: torch.dtype | None = None,
) -> Any:
    """Zero-shot scores of single-nucleotide variants, as GPN / TraitGym compute them.

    For each variant (``chrom``, 1-based ``pos``, ``ref``, ``alt``): the ``window``-bp window
    ``[pos-1-window/2, pos-1+window/2)`` of the genome, uppercased (positions off the chromosome
    are ``[UNK]``), with the variant at index ``window/2`` (``window/2 - 1`` on the reverse
    complement).

    - ``llr``: with the variant position ``[MASK]``ed, ``logit[alt] - logit[ref]``, averaged over
      the forward and reverse-complement windows. Predictors ``minus_llr = -llr`` and
      ``abs_llr = |llr|`` (larger = more likely functional).
    - ``embed_dist``: Euclidean distance between the last hidden states (all positions) of the
      ref and alt windows (no mask), averaged over both strands (skipped if ``embeddings=False``).

    Args:
        model: a ``GPNModule``, ``GPN``, or a checkpoint path (see :func:`glmx.eval.load_model`).
        genome_fasta: FASTA path (plain/.gz/.zst) or an already loaded ``{name: sequence}``.
        variants: a path (.tsv/.csv/.vcf/.parquet), a pandas DataFrame, a dict of columns or a
            list of row dicts.
        batch_size: variants per forward pass (each costs 2 windows, 6 with embeddings).
        device: where to run (default: the model's device); CPU or CUDA.
        dtype: autocast dtype on CUDA (e.g. ``torch.bfloat16``); ``None`` runs in fp32.

    Returns:
        The input as a DataFrame with score columns added when a DataFrame was given, else a
        dict of numpy columns (the input's plus ``llr``, ``minus_llr``, ``abs_llr`` and
        ``embed_dist``).

    Raises:
        DataError: for a non-SNV, an unknown chromosome, a position off the chromosome or a
            reference base that disagrees with the genome.
    """
    is_frame = hasattr(variants, "columns") and hasattr(variants, "copy")
    if isinstance(variants, (str, os.PathLike)):
        cols = read_variants(variants)
    else:
        cols = from_frame(variants)
    genome = genome_fasta if isinstance(genome_fasta, dict) else read_fasta(genome_fasta)
    net = as_network(model)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    net = net.to(dev)
    was_training = net.training
    net.eval()
    t0 = time.monotonic()
    ids = torch.from_numpy(_windows(genome, cols, window, check_ref))
    ref = torch.tensor([_BASE_ID[r] for r in cols["ref"]], dtype=torch.long)
    alt = torch.tensor([_BASE_ID[a] for a in cols["alt"]], dtype=torch.long)
    llrs, dists = [], []
    use_amp = dtype is not None and dev.type == "cuda"
    for lo in range(0, len(ref), batch_size):
        sl = slice(lo, lo + batch_size)
        with torch.autocast("cuda", dtype=dtype, enabled=use_amp):
            llr, dist = _score_batch(
                net, ids[sl].to(dev), ref[sl].to(dev), alt[sl].to(dev), window // 2, embeddings
            )
        llrs.append(llr.cpu())
        if dist is not None:
            dists.append(dist.cpu())
    net.train(was_training)
    llr_all = torch.cat(llrs).numpy().astype(np.float64) if llrs else np.zeros(0)
    scores = {"llr": llr_all, "minus_llr": -llr_all, "abs_llr": np.abs(llr_all)}
    if embeddings:
        scores["embed_dist"] = torch.cat(dists).numpy().astype(np.float64) if dists else np.zeros(0)
    log.info("scored %d variants in %.1fs on %s", len(llr_all), time.monotonic() - t0, dev)
    if is_frame:
        out = variants.copy()
        for k, v in scores.items():
            out[k] = v
        return out
    return {**cols, **scores}


def evaluate_scores(
    scored: Any, label: str = "label", predictors: tuple[str, ...] = PREDICTORS
) -> dict[str, dict[str, float]]:
    """AUPRC of each predictor present in ``scored`` (the output of :func:`score_variants`):
    ``{predictor: {"auprc": global, "auprc_by_chrom": weighted per-chromosome mean}}``.

    Raises:
        DataError: when there is no ``label`` column or no positive label.
    """
    cols = (
        scored if isinstance(scored, dict) else {c: np.asarray(scored[c]) for c in scored.columns}
    )
    if label not in cols:
        raise DataError(f"no {label!r} column to evaluate against (has: {', '.join(cols)})")
    y = np.asarray(cols[label]).astype(bool)
    out = {}
    for name in predictors:
        if name in cols:
            s = np.asarray(cols[name], dtype=np.float64)
            out[name] = {
                "auprc": auprc(y, s),
                "auprc_by_chrom": auprc_by_chrom(np.asarray(cols["chrom"]), y, s)[0],
            }
    return out
