"""Issue #14 (runtime half): crafted checkpoints, validated native arguments, rank start-up
order, data size limits, and fuzzing of the checkpoint readers under a memory limit."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file as st_save

from glmx import _glmx
from glmx.ckpt import CheckpointManager, load_file, save_file
from glmx.data import DnaMlmLoader
from glmx.errors import CheckpointError, DataError, GlmxError

HERE = Path(__file__).parent


def _nested_file(path: Path, structure: str) -> Path:
    st_save(
        {"t": torch.zeros(2)},
        str(path),
        metadata={"glmx.format": "glmx.nested/1", "glmx.structure": structure},
    )
    return path


def _raw_file(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


# -- item 8: structure decoding ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "structure, match",
    [
        ('{"f": {"__dtype__": "load"}}', "unknown torch dtype 'load'"),
        ('{"f": {"__dtype__": "hub"}}', "unknown torch dtype 'hub'"),
        ('{"b": {"__bytes__": "!!not base64"}}', "not valid base64"),
        ('{"n": {"__np__": "O", "value": 1}}', "numpy dtype 'O' is not allowed"),
        ('{"x": {"__float__": "1e999"}}', "__float__ must be"),
        ('{"d": {"__dict__": [[1]]}}', "not a \\[key, value\\] pair"),
        ('{"t": {"__tensor__": "missing"}}', "does not hold"),
        ("[" * 5000 + "]" * 5000, "not valid JSON|nesting deeper"),
        ("[" * 150 + "]" * 150, "nesting deeper than 100"),
    ],
)
def test_crafted_structures_raise_checkpoint_error(tmp_path, structure, match):
    with pytest.raises(CheckpointError, match=match):
        load_file(_nested_file(tmp_path / "x.safetensors", structure))


def test_valid_dtypes_and_values_still_round_trip(tmp_path):
    state = {"d": torch.bfloat16, "b": b"\x00\xff", "f": math.inf, "k": {1: (2, "x")}}
    save_file(state, tmp_path / "ok.safetensors")
    assert load_file(tmp_path / "ok.safetensors") == state


# -- item 8: safetensors headers, both readers -----------------------------------------------------
def _committed(tmp_path: Path) -> tuple[CheckpointManager, Path]:
    m = CheckpointManager(tmp_path / "run", async_save=False)
    ckpt = m.save(1, {"w": torch.ones(2, 2)}, {"trainer": {"step": 1}})
    return m, ckpt


BAD_HEADERS = [
    ({"a": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}, 16, "shape"),
    (
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        },
        12,
        "overlap|follow",
    ),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8, "offsets|cover"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 1]}}, 8, "data_offsets"),
    ({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, 8, "dtype"),
]


@pytest.mark.parametrize("header, size, match", BAD_HEADERS)
def test_crafted_headers_raise_checkpoint_error(tmp_path, header, size, match):
    path = _raw_file(tmp_path / "x.safetensors", header, bytes(size))
    with pytest.raises(CheckpointError, match=match):
        load_file(path)  # the Rust reader
    m, ckpt = _committed(tmp_path)
    _raw_file(ckpt / "model.safetensors", header, bytes(size))
    with pytest.raises(CheckpointError, match=match):
        m.load(verify=False)  # the memory-mapping reader


def test_symlinks_and_fifos_inside_a_checkpoint_are_refused(tmp_path):
    m, ckpt = _committed(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (ckpt / "model.safetensors").rename(outside / "model.safetensors")
    (ckpt / "model.safetensors").symlink_to(outside / "model.safetensors")
    with pytest.raises(CheckpointError, match="symlink"):
        m.load()
    # a symlinked directory on the way to a file
    (ckpt / "model.safetensors").unlink()
    (ckpt / "sub").symlink_to(outside)
    manifest = json.loads((ckpt / "checkpoint_manifest.json").read_text())
    manifest["components"]["model"]["files"][0]["path"] = "sub/model.safetensors"
    (ckpt / "checkpoint_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="symlink"):
        m.load()
    # a FIFO where a file belongs: refused at once, no hang
    (ckpt / "sub").unlink()
    (ckpt / "sub").mkdir()
    os.mkfifo(ckpt / "sub" / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        m.load()


def test_load_file_of_a_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nonexistent.safetensors")
    with pytest.raises(FileNotFoundError):
        load_file("/nonexistent")


# -- items 9, 11: numeric arguments -----------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"barrier_timeout": float("inf")}, "barrier_timeout"),
        ({"barrier_timeout": float("nan")}, "barrier_timeout"),
        ({"barrier_timeout": -1}, "barrier_timeout"),
        ({"rank": -1}, "rank"),
        ({"world_size": 2**64}, "world_size"),
        ({"save_total_limit": -1}, "save_total_limit"),
        ({"keep_best": -1, "monitor": "loss"}, "keep_best"),
    ],
)
def test_checkpoint_manager_validates_numbers(tmp_path, kwargs, name):
    with pytest.raises(CheckpointError, match=name):
        CheckpointManager(tmp_path, **kwargs)


def test_save_step_is_validated(tmp_path):
    m = CheckpointManager(tmp_path, async_save=False)
    for step in (-1, 2**64, 1.5):
        with pytest.raises(CheckpointError, match="step must be an integer"):
            m.save(step, {"w": torch.zeros(1)})


@pytest.fixture(scope="module")
def fasta(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dna") / "a.fa"
    path.write_text(">chr1\n" + "ACGT" * 200 + "\n")
    return path


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"prefetch": 2**40}, "prefetch"),
        ({"prefetch": 0}, "prefetch"),
        ({"num_threads": -1}, "num_threads"),
        ({"num_threads": 10**6}, "num_threads"),
        ({"seq_len": 2**64}, "seq_len"),
        ({"rank": -1, "world_size": 1}, "rank"),
        ({"seed": -1}, "seed"),
        ({"mlm_probability": float("nan")}, "mlm_probability"),
    ],
)
def test_loader_validates_limits(fasta, kwargs, name):
    with pytest.raises(DataError, match=name):
        DnaMlmLoader(fasta, **{"seq_len": 64, "batch_size": 2, **kwargs})


_FUZZ = [-1, 0, 1, 2**31, 2**63, 2**64, -(2**64), 2**200, 1.5, math.nan, math.inf, True, "3", []]


def test_no_panic_or_overflow_escapes_fuzzed_inputs(tmp_path, fasta):
    """Every fuzzed value through every numeric argument of the public native API ends in a
    value, a GlmxError or a TypeError; never PanicException (a BaseException) or OverflowError."""
    escaped = []

    def attempt(what: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except (GlmxError, TypeError, FileNotFoundError):
            pass
        except BaseException as err:  # noqa: BLE001 - PanicException is a BaseException
            escaped.append(f"{what}: {type(err).__name__}: {err}")

    coord_args = ["world_size", "rank", "local_world_size", "group_size", "save_total_limit"]
    coord_args += ["keep_best", "max_shard_size", "barrier_timeout_s"]
    for name in coord_args:
        for v in _FUZZ:
            attempt(f"{name}={v!r}", _glmx.CheckpointCoordinator, str(tmp_path), **{name: v})
    coord = _glmx.CheckpointCoordinator(str(tmp_path))
    for v in _FUZZ:
        attempt(f"save({v!r})", coord.save, v, [("w", torch.zeros(1))], [], "{}", False)
    for name in ["seq_len", "batch_size", "stride", "num_threads", "prefetch", "seed", "rank"]:
        for v in _FUZZ:
            attempt(f"{name}={v!r}", DnaMlmLoader, fasta, **{"seq_len": 64, name: v})
    loader = DnaMlmLoader(fasta, seq_len=64, batch_size=2)
    for v in _FUZZ:
        attempt(f"seek({v!r})", loader._native.seek, v, 0)
        attempt(f"window({v!r})", loader.window, v)
        attempt(f"origin({v!r})", loader.origin, v)
    junk_path = str(tmp_path / "junk.safetensors")
    for junk in (b"", b"\xff" * 8, (2**63).to_bytes(8, "little") + b"{}"):
        Path(junk_path).write_bytes(junk)
        attempt(f"read {junk[:8]!r}", _glmx.read_safetensors, junk_path)
    assert not escaped, "\n".join(escaped)


# -- #22: rank start-up order ---------------------------------------------------------------------
@pytest.mark.parametrize("rank1_first", [True, False])
def test_ranks_may_start_in_any_order(tmp_path, rank1_first):
    def rank(r: int) -> Path:
        m = CheckpointManager(
            tmp_path, world_size=2, rank=r, async_save=False, barrier_timeout=60, session="s1"
        )
        return m.save(5, {"w": torch.full((2,), float(r))}, {"rng": {"seed": r}})

    results: dict[int, Path] = {}
    first, second = (1, 0) if rank1_first else (0, 1)
    t = threading.Thread(target=lambda: results.setdefault(first, rank(first)))
    t.start()
    if rank1_first:
        t.join()  # rank 1 is done with its part before rank 0 even starts
    results[second] = rank(second)
    t.join()
    ckpt = results[0]
    assert (ckpt / "rng_rank1.safetensors").is_file()
    loaded = CheckpointManager(tmp_path, world_size=2, rank=1, session="s1").load()
    assert loaded["components"]["rng"]["seed"] == 1


# -- item 3: decompression bombs --------------------------------------------------------------------
def test_gzip_bomb_in_data_is_a_data_error(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.txt.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(b"ACGT\n")
        for _ in range(96):
            f.write(b"A" * (1 << 16))  # 6 MiB on line 2, from a ~6 KiB file
    assert bomb.stat().st_size < 64 * 1024
    monkeypatch.setenv("GLMX_DATA_MAX_LINE_BYTES", str(1 << 20))
    with pytest.raises(DataError, match=r"bomb\.txt\.gz:2: line longer than 1048576"):
        DnaMlmLoader(bomb, seq_len=4, batch_size=1)
    monkeypatch.setenv("GLMX_DATA_MAX_LINE_BYTES", str(1 << 30))
    monkeypatch.setenv("GLMX_DATA_MAX_BYTES", str(1 << 20))
    with pytest.raises(DataError, match="GLMX_DATA_MAX_BYTES"):
        DnaMlmLoader(bomb, seq_len=4, batch_size=1)
    monkeypatch.setenv("GLMX_DATA_MAX_BYTES", "lots")
    with pytest.raises(DataError, match="GLMX_DATA_MAX_BYTES"):
        DnaMlmLoader(bomb, seq_len=4, batch_size=1)


# -- fuzz replay under a memory limit -----------------------------------------------------------------
def test_checkpoint_reader_fuzz_under_memory_limit():
    """Seeded mutations of real checkpoint files through both readers, in a subprocess whose
    address space is capped at 2 GiB beyond what it maps after importing torch."""
    cases = int(os.environ.get("GLMX_FUZZ_CASES", "400"))
    r = subprocess.run(
        [sys.executable, str(HERE / "ckpt_fuzz.py"), str(cases), "14", "2048"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["cases"] == cases and result["failures"] == 0
