"""Variant tables: read from TSV/CSV, VCF or Parquet into columns, and checked against a genome."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glmx.errors import DataError
from glmx.prep.genome import open_text

REQUIRED = ("chrom", "pos", "ref", "alt")
Columns = dict[str, np.ndarray]


def _finish(cols: dict[str, list[Any]], where: str) -> Columns:
    lower = {k.lower(): k for k in cols}
    aliases = {"chrom": ("chrom", "chr", "#chrom", "chromosome"), "pos": ("pos", "position")}
    out: Columns = {}
    for want in REQUIRED:
        names = aliases.get(want, (want,))
        key = next((lower[n] for n in names if n in lower), None)
        if key is None:
            raise DataError(f"{where}: no {want!r} column (has: {', '.join(cols)})")
        out[want] = np.asarray(cols[key])
    for k, v in cols.items():
        if k.lower() not in {n for w in REQUIRED for n in aliases.get(w, (w,))}:
            out[k] = np.asarray(v)
    try:
        out["pos"] = out["pos"].astype(np.int64)
    except ValueError:
        raise DataError(f"{where}: 'pos' must hold integers (1-based positions)") from None
    out["chrom"] = out["chrom"].astype(str)
    out["ref"] = np.char.upper(out["ref"].astype(str))
    out["alt"] = np.char.upper(out["alt"].astype(str))
    if "label" in out:
        lab = out["label"]
        if lab.dtype.kind in "US":
            lab = np.isin(np.char.lower(lab.astype(str)), ("1", "true", "yes", "t"))
        out["label"] = lab.astype(bool)
    return out


def _read_delimited(p: Path) -> Columns:
    with open_text(p) as fh:
        sample = fh.readline()
        delim = "\t" if "\t" in sample else ","
        rows = list(csv.reader([sample, *fh], delimiter=delim))
    if not rows:
        raise DataError(f"{p}: empty variant table")
    header, body = rows[0], [r for r in rows[1:] if r]
    for i, r in enumerate(body, 2):
        if len(r) != len(header):
            raise DataError(f"{p}:{i}: {len(r)} fields, the header has {len(header)}")
    cols = {h: [r[j] for r in body] for j, h in enumerate(header)}
    return _finish(cols, str(p))


def _read_vcf(p: Path) -> Columns:
    cols: dict[str, list[Any]] = {"chrom": [], "pos": [], "id": [], "ref": [], "alt": []}
    labels: list[Any] = []
    with open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("#") or not line.strip():
                continue
            f = line.rstrip("\n").split("\t")
            if len(f) < 5:
                raise DataError(f"{p}:{lineno}: a VCF row needs at least 5 tab-separated fields")
            info = (
                dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv) if len(f) > 7 else {}
            )
            for alt in f[4].split(","):  # one row per alternative allele
                cols["chrom"].append(f[0])
                cols["pos"].append(f[1])
                cols["id"].append(f[2])
                cols["ref"].append(f[3])
                cols["alt"].append(alt)
                labels.append(info.get("label", info.get("LABEL")))
    if not cols["chrom"]:
        raise DataError(f"{p}: no variant rows")
    if all(x is not None for x in labels):
        cols["label"] = labels
    return _finish(cols, str(p))


def _read_parquet(p: Path) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        try:
            import pandas as pd
        except ImportError:
            raise DataError(
                f"{p}: reading Parquet needs pyarrow (pip install pyarrow); or convert the table "
                "to TSV"
            ) from None
        return from_frame(pd.read_parquet(p), str(p))
    table = pq.read_table(p)
    return _finish({name: table.column(name).to_pylist() for name in table.column_names}, str(p))


def read_variants(path: str | os.PathLike[str]) -> Columns:
    """A variant table as columns (numpy arrays): ``chrom``, ``pos`` (1-based), ``ref``,
    ``alt`` (uppercased), ``label`` (bool) when present, plus any other columns.

    Formats by extension: ``.tsv``/``.csv``/``.txt`` (header row; ``.gz``/``.zst`` allowed),
    ``.vcf`` (multi-allelic rows split; ``label`` from the INFO field when every row has it),
    ``.parquet`` (TraitGym's format; needs pyarrow).

    Raises:
        DataError: for a missing file, an unknown extension or a malformed row (with its line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"variant file not found: {p}")
    name = p.name.lower().removesuffix(".gz").removesuffix(".zst")
    if name.endswith(".parquet"):
        return _read_parquet(p)
    if name.endswith(".vcf"):
        return _read_vcf(p)
    if name.endswith((".tsv", ".csv", ".txt", ".tab")):
        return _read_delimited(p)
    raise DataError(f"{p}: unknown variant file type; use .tsv, .csv, .vcf or .parquet")


def from_frame(frame: Any, where: str = "variants") -> Columns:
    """Columns from a pandas DataFrame, a dict of sequences, or a list of row dicts."""
    if hasattr(frame, "to_dict") and hasattr(frame, "columns"):
        return _finish({str(c): list(frame[c]) for c in frame.columns}, where)
    if isinstance(frame, Mapping):
        return _finish({str(k): list(v) for k, v in frame.items()}, where)
    if isinstance(frame, Sequence) and frame and isinstance(frame[0], Mapping):
        keys = list(frame[0].keys())
        return _finish({str(k): [row[k] for row in frame] for k in keys}, where)
    raise DataError(
        f"{where}: expected a path, a DataFrame, a dict of columns or a list of row dicts, "
        f"got {type(frame).__name__}"
    )


def resolve_chrom(name: str, genome: Mapping[str, str]) -> str:
    """``name`` as spelled in ``genome`` (tries the ``chr`` prefix both ways).

    Raises:
        DataError: listing a few available names.
    """
    if name in genome:
        return name
    for alt in (f"chr{name}", name.removeprefix("chr")):
        if alt in genome:
            return alt
    shown = ", ".join(sorted(genome)[:8])
    raise DataError(f"chromosome {name!r} is not in the genome (has: {shown})")
