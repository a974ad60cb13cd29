"""Reading genomes: FASTA (plain, ``.gz`` or ``.zst``) into memory, and the N-free runs of a sequence."""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterator
from typing import IO

from glmx.errors import DataError

PathLike = str | os.PathLike[str]
_DEFINED = re.compile(r"[^Nn]+")


def open_text(path: PathLike) -> IO[str]:
    """Opens a text file that may be ``.gz`` or ``.zst`` compressed.

    Raises:
        DataError: when the file does not exist, or is ``.zst`` and ``zstandard`` is missing.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise DataError(f"file not found: {p}")
    if p.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="ascii", errors="replace")
    if p.endswith(".zst"):
        try:
            import zstandard
        except ImportError:  # pragma: no cover - zstandard is a glmx dependency
            raise DataError(f"{p}: reading .zst needs the 'zstandard' package") from None
        raw = open(p, "rb")  # noqa: SIM115 - owned by the returned wrapper
        stream = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.TextIOWrapper(stream, encoding="ascii", errors="replace")
    return open(p, encoding="ascii", errors="replace")  # noqa: SIM115


def iter_fasta(path: PathLike) -> Iterator[tuple[str, str]]:
    """Yields ``(name, sequence)`` for each record; the name is the header up to the first space.

    Case is kept (lowercase = soft-masked).

    Raises:
        DataError: naming ``file:line`` for sequence text before the first header or an empty name.
    """
    name: str | None = None
    parts: list[str] = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if name is not None:
                    yield name, "".join(parts)
                fields = line[1:].split()
                if not fields:
                    raise DataError(f"{os.fspath(path)}:{lineno}: FASTA header without a name")
                name, parts = fields[0], []
            elif name is None:
                raise DataError(
                    f"{os.fspath(path)}:{lineno}: sequence before the first '>' header; "
                    "is this a FASTA file?"
                )
            else:
                parts.append(line)
    if name is not None:
        yield name, "".join(parts)


def read_fasta(path: PathLike) -> dict[str, str]:
    """All records of a FASTA file as ``{name: sequence}`` (case kept).

    Raises:
        DataError: when the file is missing, malformed, empty or names a sequence twice.
    """
    genome: dict[str, str] = {}
    for name, seq in iter_fasta(path):
        if name in genome:
            raise DataError(f"{os.fspath(path)}: sequence name {name!r} appears twice")
        genome[name] = seq
    if not genome:
        raise DataError(f"{os.fspath(path)}: no FASTA records found")
    return genome


def defined_intervals(seq: str) -> list[tuple[int, int]]:
    """0-based half-open runs of ``seq`` without N/n (the places a window may come from)."""
    return [m.span() for m in _DEFINED.finditer(seq)]
