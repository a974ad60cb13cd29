"""Platform server API against a real uvicorn server on loopback and real SQLite: auth, token
file, CORS, size limits, path confinement, config validation, metrics, logs, the WebSocket."""

from __future__ import annotations

import json
import os
import stat
import time

import httpx
import pytest

pytest.importorskip("fastapi", reason="the platform extra is not installed")
from cli_helpers import glmx  # noqa: E402
from platform_support import TOKEN, Server, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("srv") / "home"
    home.mkdir()
    srv = Server(
        home,
        extra_args=("--max-body-mb", "1"),
        extra_env={"GLMX_CORS_ORIGINS": "http://allowed.example"},
    ).start()
    yield srv
    srv.kill()


@pytest.fixture()
def api(server):
    with server.client() as c:
        yield c


def _agent_run(api, run_id=None):
    """Registers a hand-driven agent (the HTTP calls a real agent makes) and claims a run."""
    agent = api.post("/api/v1/agents", json={"host": "h", "device": "cpu"}).json()
    claimed = api.post(f"/api/v1/agents/{agent['id']}/claim")
    assert claimed.status_code == 200, claimed.text
    run = claimed.json()
    assert run_id is None or run["id"] == run_id
    return agent, run


def test_mutating_calls_need_the_token(server):
    body = {"kind": "smoke", "overrides": ["steps=2"]}
    assert httpx.post(f"{server.url}/api/v1/runs", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{server.url}/api/v1/runs", json=body, headers=wrong).status_code == 401
    for path in ("/api/v1/agents", "/api/v1/projects", "/api/v1/runs/1/actions/cancel"):
        assert httpx.post(f"{server.url}{path}", json={}).status_code == 401, path
    assert httpx.get(f"{server.url}/api/v1/health").json()["db"] == "sqlite"
    assert httpx.get(f"{server.url}/docs").status_code == 200
    ok = httpx.post(f"{server.url}/api/v1/runs", json=body, headers={"X-GLMX-Token": TOKEN})
    assert ok.status_code == 201


def test_token_file_created_0600_at_first_start(tmp_path):
    home = tmp_path / "home"
    srv = Server(home, extra_env={"GLMX_PLATFORM_TOKEN": ""})
    srv.start()
    try:
        token_file = home / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        body = {"kind": "smoke"}
        assert (
            httpx.post(
                f"{srv.url}/api/v1/runs", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            ).status_code
            == 401
        )
        assert (
            httpx.post(
                f"{srv.url}/api/v1/runs", json=body, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 201
        )
    finally:
        srv.kill()
    # a second start keeps the token; a token file others can read is refused
    os.chmod(home / "token", 0o644)
    r = glmx("server", "--home", str(home), "--port", "1", env={"GLMX_PLATFORM_TOKEN": ""})
    assert r.returncode == 2 and "chmod 600" in r.stderr, r.stderr


def test_cors_only_for_configured_origins(server):
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    ok = httpx.options(
        f"{server.url}/api/v1/runs", headers={"Origin": "http://allowed.example", **pre}
    )
    assert ok.headers.get("access-control-allow-origin") == "http://allowed.example"
    bad = httpx.options(
        f"{server.url}/api/v1/runs", headers={"Origin": "http://evil.example", **pre}
    )
    assert "access-control-allow-origin" not in bad.headers


def test_request_size_limit(api):
    lines = ["x" * 1000] * 1500  # ~1.5 MB > 1 MiB limit
    r = api.post("/api/v1/runs/1/logs", json={"lines": lines})
    assert r.status_code == 413 and "too large" in r.text

    # streamed without a declared length
    def chunks():
        yield b'{"lines": ["' + b"y" * (2 << 20) + b'"]}'

    r = api.post(
        "/api/v1/runs/1/logs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_config_validation_names_the_key(api):
    r = api.post(
        "/api/v1/configs",
        json={"name": "c1", "experiment": "tiny_cpu", "overrides": ["model.nope=3"]},
    )
    assert r.status_code == 422 and "model.nope" in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "overrides[0]"]
    r = api.post("/api/v1/runs", json={"experiment": "no_such_experiment"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "experiment"]
    assert "tiny_cpu" in r.text  # lists the alternatives
    r = api.post(
        "/api/v1/configs",
        json={"name": "c1", "experiment": "tiny_cpu", "overrides": ["trainer.max_epochs=1"]},
    )
    assert r.status_code == 201, r.text
    cfg = r.json()
    assert api.get(f"/api/v1/configs/{cfg['id']}").json()["overrides"] == ["trainer.max_epochs=1"]
    assert "tiny_cpu" in api.get("/api/v1/experiments").json()["experiments"]
    run = api.post("/api/v1/runs", json={"config_id": cfg["id"]}).json()
    assert run["experiment"] == "tiny_cpu" and run["overrides"] == ["trainer.max_epochs=1"]
    api.post(f"/api/v1/runs/{run['id']}/actions/cancel")


@pytest.mark.parametrize(
    "override",
    [
        "data.path=/etc/passwd",
        "data.path=../../etc",
        "data.path=~/x",
        "hydra.run.dir=/tmp/x",
        "paths.output_dir=x",
        "ckpt_path=/tmp/x",
        "+callbacks.x._target_=os.system",
        "experiment=../x",
    ],
)
def test_overrides_confined(api, override):
    r = api.post("/api/v1/runs", json={"experiment": "tiny_cpu", "overrides": [override]})
    assert r.status_code == 422, (override, r.text)
    r = api.post("/api/v1/runs", json={"experiment": "../../etc/passwd"})
    assert r.status_code == 422
    r = api.post("/api/v1/runs", json={"experiment": "/etc/passwd"})
    assert r.status_code == 422


def test_checkpoint_download_confined(server, api):
    run = api.post("/api/v1/runs", json={"kind": "smoke", "priority": 100}).json()
    ckpt = os.path.join(run["run_dir"], "checkpoints", "checkpoint-3")
    os.makedirs(ckpt)
    with open(os.path.join(ckpt, "model.safetensors"), "wb") as f:
        f.write(b"weights")
    with open(os.path.join(ckpt, "checkpoint_manifest.json"), "w") as f:
        f.write("{}")
    listed = api.get(f"/api/v1/runs/{run['id']}/checkpoints").json()["checkpoints"]
    assert listed[0]["name"] == "checkpoint-3" and listed[0]["step"] == 3 and listed[0]["complete"]
    good = api.get(f"/api/v1/runs/{run['id']}/checkpoints/checkpoint-3/model.safetensors")
    assert good.status_code == 200 and good.content == b"weights"
    base = f"{server.url}/api/v1/runs/{run['id']}/checkpoints"
    for tail in (
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "checkpoint-3/%2e%2e%2f%2e%2e%2fmodel",
        "checkpoint-3/%2Fetc%2Fpasswd",
        "%2Fetc/passwd",
        "..%2F..%2F..%2F..%2Fetc/passwd",
        "checkpoint-3/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    ):
        r = httpx.get(f"{base}/{tail}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code in (400, 404), (tail, r.status_code)
        assert b"root:" not in r.content
    api.post(f"/api/v1/runs/{run['id']}/actions/cancel")


def test_a_log_batch_sent_twice_is_stored_once(api):
    """An agent whose reply was lost (the server died after the commit) re-sends the batch
    with the same ``first_seq``: the lines already stored are skipped, the rest appended."""
    run = api.post("/api/v1/runs", json={"kind": "smoke", "name": "resend", "priority": 90}).json()
    _, claimed = _agent_run(api, run["id"])
    rid, attempt = run["id"], claimed["attempt"]
    assert claimed["next_log_seq"] == 0

    def post(lines, first_seq):
        body = {"attempt": attempt, "lines": lines, "first_seq": first_seq}
        r = api.post(f"/api/v1/runs/{rid}/logs", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    assert post(["a", "b"], 0) == {"accepted": 2, "next_seq": 2}
    assert post(["a", "b"], 0) == {"accepted": 0, "next_seq": 2}  # the re-sent batch
    assert post(["b", "c"], 1) == {"accepted": 1, "next_seq": 3}  # half of it was stored
    assert post(["d"], None) == {"accepted": 1, "next_seq": 4}  # no position: appended
    lines = api.get(f"/api/v1/runs/{rid}/logs", params={"tail": 10}).json()["lines"]
    assert [(x["seq"], x["line"]) for x in lines] == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    bad = api.post(f"/api/v1/runs/{rid}/logs", json={"lines": ["x"], "first_seq": -1})
    assert bad.status_code == 422


def test_agent_protocol_metrics_logs_and_stream(server, api):
    run = api.post("/api/v1/runs", json={"kind": "smoke", "name": "proto", "priority": 50}).json()
    agent, claimed = _agent_run(api, run["id"])
    rid, attempt, aid = run["id"], claimed["attempt"], agent["id"]
    assert claimed["state"] == "claimed" and attempt == 1
    assert api.post(f"/api/v1/agents/{aid}/claim").status_code == 409  # one run at a time
    assert (
        api.post(
            f"/api/v1/agents/{aid}/runs/{rid}/state", json={"attempt": attempt, "state": "running"}
        ).json()["state"]
        == "running"
    )
    points = [{"key": "train/loss", "step": s, "value": 10.0 / s} for s in range(1, 1001)]
    points += [{"key": "val/loss", "step": s, "value": 5.0 / s} for s in range(100, 1001, 100)]
    assert (
        api.post(f"/api/v1/runs/{rid}/metrics", json={"attempt": attempt, "points": points}).json()[
            "accepted"
        ]
        == 1010
    )
    # a stale attempt is refused (a requeued run's old agent)
    stale = api.post(f"/api/v1/runs/{rid}/metrics", json={"attempt": 0, "points": points[:1]})
    assert stale.status_code == 409
    assert api.get(f"/api/v1/runs/{rid}/metrics/keys").json()["keys"] == ["train/loss", "val/loss"]
    page = api.get(f"/api/v1/runs/{rid}/metrics", params={"key": "train/loss", "limit": 300}).json()
    assert len(page["points"]) == 300 and page["next_after_step"] == 300
    page2 = api.get(
        f"/api/v1/runs/{rid}/metrics", params={"key": "train/loss", "after_step": 300, "limit": 300}
    ).json()
    assert page2["points"][0]["step"] == 301
    small = api.get(f"/api/v1/runs/{rid}/metrics", params={"key": "train/loss", "max_points": 50})
    steps = [p["step"] for p in small.json()["points"]]
    assert len(steps) == 50 and steps[0] == 1 and steps[-1] == 1000
    api.post(
        f"/api/v1/runs/{rid}/logs", json={"attempt": attempt, "lines": [f"l{i}" for i in range(30)]}
    )
    assert [
        x["line"] for x in api.get(f"/api/v1/runs/{rid}/logs", params={"tail": 3}).json()["lines"]
    ] == ["l27", "l28", "l29"]
    assert api.get(f"/api/v1/runs/{rid}/logs", params={"after": 28}).json()["lines"] == [
        {"seq": 29, "line": "l29"}
    ]
    # actions reach the agent through its heartbeat
    api.post(f"/api/v1/runs/{rid}/actions/save")
    hb = api.post(
        f"/api/v1/agents/{aid}/heartbeat", json={"run_id": rid, "attempt": attempt}
    ).json()
    assert hb["valid"] and hb["action"] == "save"
    assert (
        api.post(
            f"/api/v1/agents/{aid}/heartbeat", json={"run_id": rid, "attempt": attempt}
        ).json()["action"]
        is None
    )
    agents = {a["id"]: a for a in api.get("/api/v1/agents").json()["agents"]}
    assert agents[aid]["current_run_id"] == rid and agents[aid]["state"] == "busy"

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    ws_url = server.url.replace("http", "ws") + f"/api/v1/runs/{rid}/stream?interval=0.1"
    with connect(ws_url) as ws:
        ws.send(json.dumps({"token": "wrong"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401
    with connect(ws_url) as ws:
        ws.send(json.dumps({"token": TOKEN}))
        first = json.loads(ws.recv(timeout=10))
        assert first == {**first, "type": "state", "state": "running"}
        got = json.loads(ws.recv(timeout=10))
        assert got["type"] == "metrics" and len(got["points"]) == 1010
        api.post(
            f"/api/v1/runs/{rid}/metrics",
            json={
                "attempt": attempt,
                "points": [{"key": "train/loss", "step": 1001, "value": 0.01}],
            },
        )
        new = json.loads(ws.recv(timeout=10))
        while new["type"] != "metrics":  # the state message (last_step moved) comes first
            assert new["last_step"] == 1001
            new = json.loads(ws.recv(timeout=10))
        assert new["points"] == [{**new["points"][0], "step": 1001, "value": 0.01}]
        api.post(
            f"/api/v1/agents/{aid}/runs/{rid}/state",
            json={"attempt": attempt, "state": "done", "exit_code": 0},
        )
        msgs = []
        while True:
            try:
                msgs.append(json.loads(ws.recv(timeout=10)))
            except Exception:
                break
        assert any(m.get("state") == "done" for m in msgs)
    done = api.get(f"/api/v1/runs/{rid}").json()
    assert done["state"] == "done" and done["exit_code"] == 0
    assert done["final_metrics"]["train/loss"] == {"value": 0.01, "step": 1001, "best": 0.01}
    assert done["final_metrics"]["val/loss"]["value"] == 0.005
    late = api.post(f"/api/v1/runs/{rid}/metrics", json={"points": points[:1]})
    assert late.status_code == 409


def test_lease_expiry_requeues_and_fences_the_old_agent(tmp_path):
    home = tmp_path / "home"
    srv = Server(home, lease=1.0).start()
    try:
        with srv.client() as api:
            run = api.post("/api/v1/runs", json={"kind": "smoke"}).json()
            agent, claimed = _agent_run(api, run["id"])
            rid = run["id"]
            requeued = wait_for(
                lambda: api.get(f"/api/v1/runs/{rid}").json()["state"] == "queued",
                10,
                "the lease to expire",
            )
            assert requeued
            events = [e["what"] for e in api.get(f"/api/v1/runs/{rid}").json()["events"]]
            assert "preempted" in events
            hb = api.post(
                f"/api/v1/agents/{agent['id']}/heartbeat", json={"run_id": rid, "attempt": 1}
            ).json()
            assert hb["valid"] is False
            other, again = _agent_run(api, rid)
            assert again["attempt"] == 2
            r = api.post(
                f"/api/v1/agents/{agent['id']}/runs/{rid}/state",
                json={"attempt": 1, "state": "done"},
            )
            assert r.status_code == 409
    finally:
        srv.kill()


def test_runs_cli(server, tmp_path):
    env = {"GLMX_PLATFORM_URL": server.url, "GLMX_PLATFORM_TOKEN": TOKEN}
    r = glmx(
        "runs", "submit", "--kind", "smoke", "steps=3", "--name", "cli-run", "--tag", "t1", env=env
    )
    assert r.returncode == 0, r.stderr
    rid = int(r.stdout.strip())
    listed = json.loads(glmx("runs", "list", "--format", "json", env=env).stdout)
    assert any(x["id"] == rid and x["tags"] == ["t1"] for x in listed)
    shown = json.loads(glmx("runs", "show", str(rid), "--format", "json", env=env).stdout)
    assert shown["name"] == "cli-run" and shown["state"] == "queued"
    text = glmx("runs", "list", env=env).stdout
    assert "cli-run" in text and "STATE" in text
    r = glmx("runs", "cancel", str(rid), env=env)
    assert r.returncode == 0 and "cancelled" in r.stdout
    bad = glmx("runs", "submit", "experiment=tiny_cpu", "model.nope=1", env=env)
    assert bad.returncode == 2 and "model.nope" in bad.stderr and "Traceback" not in bad.stderr
    noauth = glmx("runs", "cancel", str(rid), env={**env, "GLMX_PLATFORM_TOKEN": "x"})
    assert noauth.returncode == 2 and "401" in noauth.stderr
    down = glmx("runs", "list", "--server", "http://127.0.0.1:9", env=env)
    assert down.returncode == 2 and "cannot reach" in down.stderr
    assert time.time()  # the module server is still up for other tests


def test_server_bad_database_is_one_line(tmp_path):
    for url, words in (
        ("bogus://x", "driver not available"),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/x", "connection"),
    ):
        r = glmx("server", "--home", str(tmp_path / "h"), "--db", url, "--port", "1")
        assert r.returncode == 2 and words in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "secret" not in r.stderr
    r = glmx(
        "agent",
        "--server",
        "http://127.0.0.1:1",
        "--device",
        "gpu0",
        env={"GLMX_PLATFORM_TOKEN": TOKEN},
    )
    assert r.returncode == 2 and "cuda:N" in r.stderr
