"""What the endpoints compute, on top of the :class:`~glmx.serve.batcher.Batcher`: tokens,
pooled embeddings, nucleotide probabilities and variant scores (the recipe of
:func:`glmx.eval.score_variants`: masked LLR and embedding distance, both strands)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from glmx.eval.scoring import _BASE_ID, _COMP, _LUT, MASK, _rc, _windows
from glmx.serve.batcher import Batcher

NUCLEOTIDES = "ACGT"
POOLINGS = ("mean", "max", "none")


class RequestError(Exception):
    """A user mistake in a request: HTTP ``status`` with a one-line message naming ``param``."""

    def __init__(self, message: str, param: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


def tokenize(seq: str, param: str, max_len: int) -> torch.Tensor:
    """Token ids ``(L,)`` of a DNA string: A/C/G/T in either case, any other letter (N, IUPAC
    codes) is ``[UNK]``, as in the reference tokenizer.

    Raises:
        RequestError: for an empty or too long sequence or a character that is not a letter.
    """
    if not seq:
        raise RequestError("empty sequence", param)
    if len(seq) > max_len:
        raise RequestError(
            f"sequence of {len(seq)} bp exceeds the server's limit of {max_len} bp", param, 413
        )
    raw = seq.encode("ascii", errors="replace")
    arr = np.frombuffer(raw, np.uint8)
    bad = np.flatnonzero(~(((arr >= 65) & (arr <= 90)) | ((arr >= 97) & (arr <= 122))))
    if bad.size:
        i = int(bad[0])
        raise RequestError(
            f"character {seq[i]!r} at position {i} is not a nucleotide letter", param
        )
    return torch.from_numpy(_LUT[arr].copy())


async def run_rows(
    batcher: Batcher, *inputs: tuple[torch.Tensor, bool]
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Runs each ``(ids (n, L), hidden)`` of one request through the batcher in blocks of at
    most ``max_batch`` rows, all admitted to its queue together; ``(logits, hidden states or
    None)`` per input."""
    step = max(1, batcher.max_batch)
    blocks, owner = [], []
    for k, (ids, hidden) in enumerate(inputs):
        for lo in range(0, ids.shape[0], step):
            blocks.append((ids[lo : lo + step], hidden))
            owner.append(k)
    parts = await batcher.submit_all(blocks)
    out = []
    for k, (_ids, hidden) in enumerate(inputs):
        mine = [p for p, o in zip(parts, owner, strict=True) if o == k]
        logits = torch.cat([p[0] for p in mine])
        h = torch.cat([p[1] for p in mine if p[1] is not None]) if hidden else None
        out.append((logits, h))
    return out


async def embeddings(batcher: Batcher, seqs: list[str], pooling: str, max_len: int) -> list[Any]:
    """One embedding per sequence: the last hidden state pooled over positions (``mean`` or
    ``max``, a ``(H,)`` vector) or all positions (``none``, an ``(L, H)`` matrix)."""
    toks = [tokenize(s, f"input.{i}", max_len) for i, s in enumerate(seqs)]
    outs = await run_rows(batcher, *((t[None], True) for t in toks))
    res = []
    for _logits, h in outs:
        assert h is not None
        h = h[0]
        if pooling == "mean":
            res.append(h.mean(0))
        elif pooling == "max":
            res.append(h.max(0).values)
        else:
            res.append(h)
    return res


def nucleotide_probs(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the A/C/G/T logits only, ``(..., 4)``."""
    return torch.softmax(logits[..., 3:7].float(), dim=-1)


async def probabilities(
    batcher: Batcher, seq: str, mask: list[int], separately: bool, max_len: int
) -> torch.Tensor:
    """A/C/G/T probabilities ``(L, 4)`` of ``seq`` with the positions in ``mask`` replaced by
    ``[MASK]``: all in one pass, or (``separately``) each masked position read from a pass in
    which it alone is masked (unmasked positions from the unmasked pass)."""
    ids = tokenize(seq, "sequence", max_len)
    for j, p in enumerate(mask):
        if not 0 <= p < len(ids):
            raise RequestError(
                f"mask position {p} is outside the sequence (0..{len(ids) - 1})", f"mask.{j}"
            )
    if not separately:
        row = ids.clone()
        row[mask] = MASK
        [(logits, _)] = await run_rows(batcher, (row[None], False))
        return nucleotide_probs(logits[0])
    uniq = sorted(set(mask))
    rows = ids.repeat(len(uniq) + 1, 1)
    for r, p in enumerate(uniq, start=1):
        rows[r, p] = MASK
    [(logits, _)] = await run_rows(batcher, (rows, False))
    probs = nucleotide_probs(logits[0])
    for r, p in enumerate(uniq, start=1):
        probs[p] = nucleotide_probs(logits[r, p])
    return probs


def variant_windows(
    genome: dict[str, str], variants: list[dict[str, Any]], window: int, check_ref: bool
) -> tuple[torch.Tensor, list[int], list[str], list[str]]:
    """Windows of the genome around 1-based SNVs, exactly as :func:`glmx.eval.score_variants`
    cuts them (variant at ``window // 2``)."""
    from glmx.errors import DataError

    refs = [str(v["ref"]).upper() for v in variants]
    alts = [str(v["alt"]).upper() for v in variants]
    cols = {
        "chrom": np.array([str(v["chrom"]) for v in variants]),
        "pos": np.array([int(v["pos"]) for v in variants]),
        "ref": np.array(refs),
        "alt": np.array(alts),
    }
    try:
        ids = _windows(genome, cols, window, check_ref)
    except (DataError, KeyError) as err:
        # the server's switch, not the Python keyword of score_variants
        msg = (
            str(err)
            .strip("'\"")
            .replace("check_ref=False skips", "the server option --no-check-ref skips")
        )
        param = "variants"
        for i in range(len(variants)):  # the first failing item, for the error's param
            try:
                _windows(genome, {k: v[i : i + 1] for k, v in cols.items()}, window, check_ref)
            except (DataError, KeyError):
                param = f"variants.{i}"
                break
        raise RequestError(f"{param}: {msg}", param) from None
    return torch.from_numpy(ids), [window // 2] * len(variants), refs, alts


def pair_windows(
    pairs: list[dict[str, str]], max_len: int
) -> tuple[torch.Tensor, list[int], list[str], list[str]]:
    """Ref/alt window pairs (equal length, one differing base) as scoring input."""
    if not pairs:
        return torch.zeros(0, 1, dtype=torch.long), [], [], []
    rows, pos, refs, alts = [], [], [], []
    length = None
    for i, pair in enumerate(pairs):
        r, a = pair["ref"], pair["alt"]
        if len(r) != len(a):
            raise RequestError(
                f"ref and alt windows differ in length ({len(r)} vs {len(a)})", f"windows.{i}"
            )
        if length is not None and len(r) != length:
            raise RequestError(
                f"all windows of a request must have one length ({length}), got {len(r)}",
                f"windows.{i}",
            )
        length = len(r)
        diff = [j for j, (x, y) in enumerate(zip(r.upper(), a.upper(), strict=True)) if x != y]
        if len(diff) != 1:
            raise RequestError(
                f"ref and alt windows must differ at exactly one position (found {len(diff)})",
                f"windows.{i}",
            )
        j = diff[0]
        rb, ab = r[j].upper(), a[j].upper()
        if rb not in _BASE_ID or ab not in _BASE_ID:
            raise RequestError(f"position {j}: {rb}>{ab} is not an SNV of A/C/G/T", f"windows.{i}")
        rows.append(tokenize(r, f"windows.{i}.ref", max_len))
        pos.append(j)
        refs.append(rb)
        alts.append(ab)
    return torch.stack(rows), pos, refs, alts


async def score(
    batcher: Batcher,
    ids: torch.Tensor,
    pos: list[int],
    refs: list[str],
    alts: list[str],
    embed: bool,
) -> dict[str, np.ndarray]:
    """``llr`` (masked, averaged over both strands), ``minus_llr``, ``abs_llr`` and (with
    ``embed``) ``embed_dist``, the computation of :func:`glmx.eval.score_variants`."""
    b, L = ids.shape
    if b == 0:
        empty = np.zeros(0)
        out = {"llr": empty, "minus_llr": empty, "abs_llr": empty}
        return {**out, "embed_dist": empty} if embed else out
    rows = torch.arange(b)
    p = torch.tensor(pos)
    rc_p = L - 1 - p
    ref = torch.tensor([_BASE_ID[r] for r in refs])
    alt = torch.tensor([_BASE_ID[a] for a in alts])
    fwd = ids.clone()
    fwd[rows, p] = MASK
    rev = _rc(ids)
    rev[rows, rc_p] = MASK
    blocks = [torch.cat([fwd, rev])]
    if embed:
        ref_ids, alt_ids = ids.clone(), ids.clone()
        ref_ids[rows, p], alt_ids[rows, p] = ref, alt
        blocks.append(torch.cat([ref_ids, alt_ids, _rc(ref_ids), _rc(alt_ids)]))
    (logits, _), *hid = await run_rows(
        batcher, (blocks[0], False), *((blk, True) for blk in blocks[1:])
    )
    llr_f = logits[rows, p, alt] - logits[rows, p, ref]
    llr_r = logits[b + rows, rc_p, _COMP[alt]] - logits[b + rows, rc_p, _COMP[ref]]
    llr = ((llr_f + llr_r) / 2).numpy().astype(np.float64)
    out = {"llr": llr, "minus_llr": -llr, "abs_llr": np.abs(llr)}
    if embed:
        h = hid[0][1]
        assert h is not None
        h_ref_f, h_alt_f, h_ref_r, h_alt_r = h.split(b)
        dist_f = torch.linalg.vector_norm(h_ref_f - h_alt_f, dim=(1, 2))
        dist_r = torch.linalg.vector_norm(h_ref_r - h_alt_r, dim=(1, 2))
        out["embed_dist"] = ((dist_f + dist_r) / 2).numpy().astype(np.float64)
    return out
