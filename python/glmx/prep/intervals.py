"""Interval arithmetic on ``(chrom, start, end)`` triples: 0-based, half-open."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

Interval = tuple[str, int, int]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals: overlapping or touching ones become one; sorted by chrom, start."""
    by_chrom: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for chrom, start, end in intervals:
        if end > start:
            by_chrom[chrom].append((start, end))
    out: list[Interval] = []
    for chrom in sorted(by_chrom):
        cur_s, cur_e = -1, -1
        for s, e in sorted(by_chrom[chrom]):
            if s <= cur_e:
                cur_e = max(cur_e, e)
                continue
            if cur_e > cur_s:
                out.append((chrom, cur_s, cur_e))
            cur_s, cur_e = s, e
        if cur_e > cur_s:
            out.append((chrom, cur_s, cur_e))
    return out


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """Intersection of two interval sets (each merged first)."""
    left, right = merge(a), merge(b)
    by_chrom: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for chrom, s, e in right:
        by_chrom[chrom].append((s, e))
    out: list[Interval] = []
    for chrom, s, e in left:
        for rs, re_ in by_chrom.get(chrom, ()):
            if rs >= e:
                break
            lo, hi = max(s, rs), min(e, re_)
            if hi > lo:
                out.append((chrom, lo, hi))
    return out


def clip(intervals: Iterable[Interval], sizes: dict[str, int]) -> list[Interval]:
    """Clips intervals to ``[0, size)`` of their chromosome; drops unknown chromosomes."""
    out = []
    for chrom, s, e in intervals:
        if chrom not in sizes:
            continue
        s, e = max(0, s), min(sizes[chrom], e)
        if e > s:
            out.append((chrom, s, e))
    return out


def tile(intervals: Iterable[Interval], window: int, stride: int | None = None) -> list[Interval]:
    """Full windows of ``window`` bases every ``stride`` (default ``window``) from each start."""
    step = stride or window
    out = []
    for chrom, s, e in intervals:
        pos = s
        while pos + window <= e:
            out.append((chrom, pos, pos + window))
            pos += step
    return out
