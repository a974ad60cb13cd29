"""The platform end to end with real trainings (``python -m glmx.train`` tiny runs):

- ``glmx server`` + two ``glmx agent --device cpu`` run a queue of submitted runs to completion,
  on SQLite and on PostgreSQL (the issue's "done when");
- ``kill -9`` of an agent mid-run: the run is requeued after its lease and finishes from its
  checkpoint on the other agent with exactly the loss curve of an uninterrupted run;
- server restart mid-run: no run, metric point or log line lost;
- a run started outside the platform reports to it through ``PlatformReporter``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the platform extra is not installed")
from cli_helpers import glmx  # noqa: E402
from platform_support import (  # noqa: E402
    CONFIGS,
    TOKEN,
    Postgres,
    Server,
    env,
    postgres_available,
    start_agent,
    wait_for,
)

# ~512 optimizer steps with a checkpoint every 32: long enough to be killed mid-run
FINAL = ("done", "failed", "cancelled", "preempted")
SLOW = [
    "test=false",
    "data.n=8192",
    "trainer.max_epochs=2",
    "callbacks.model_checkpoint.every_n_train_steps=32",
]
LONG = [*SLOW[:1], "data.n=32768", *SLOW[2:]]  # 2048 steps


@pytest.fixture(scope="module")
def postgres():
    if not postgres_available():
        pytest.skip("PostgreSQL 15 is not installed (apt-get install postgresql-15)")
    pg = Postgres().start()
    yield pg
    pg.stop()


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _points(api, run_id: int, key: str) -> dict[int, float]:
    pts = api.get(f"/api/v1/runs/{run_id}/metrics", params={"key": key}).json()["points"]
    return {p["step"]: p["value"] for p in pts}


def _file_points(run_dir: Path) -> dict[tuple[str, int], float]:
    out = {}
    for line in (run_dir / "trainer_logs.json").read_text().splitlines():
        rec = json.loads(line)
        for k, v in rec.items():
            if k not in ("timestamp", "global_step", "epoch") and isinstance(v, (int, float)):
                out[(k, rec["global_step"])] = float(v)
    return out


def _done_when(tmp_path: Path, db_url: str | None) -> None:
    srv = Server(tmp_path / "home", db_url=db_url).start()
    cli_env = {"GLMX_PLATFORM_URL": srv.url, "GLMX_PLATFORM_TOKEN": TOKEN}
    agents = [
        start_agent(srv.url, tmp_path / f"agent{i}", "--exit-when-idle", "5") for i in range(2)
    ]
    try:
        ids = []
        for i in range(3):
            extra = ["test=false"] if i else []  # one run also tests with the best checkpoint
            r = glmx(
                "runs",
                "submit",
                "experiment=tiny_cpu",
                f"seed={i}",
                *extra,
                "--name",
                f"tiny-{i}",
                env=cli_env,
            )
            assert r.returncode == 0, r.stderr
            ids.append(int(r.stdout))
        with srv.client() as api:
            wait_for(
                lambda: all(
                    api.get(f"/api/v1/runs/{rid}").json()["state"] in FINAL for rid in ids[1:]
                ),
                240,
                "the runs",
                poll=0.5,
            )
        r = glmx("runs", "wait", str(ids[0]), "--timeout", "240", env=cli_env)
        assert r.returncode == 0, (r.stdout, r.stderr, srv.read_log())
        with srv.client() as api:
            runs = [api.get(f"/api/v1/runs/{rid}").json() for rid in ids]
            assert all(r["state"] == "done" and r["attempt"] == 1 for r in runs)
            assert len({r["agent_id"] for r in runs}) == 2  # both agents worked
            for r in runs:
                losses = _points(api, r["id"], "train/loss")
                assert max(losses) == 24 and r["final_metrics"]["train/loss"]["step"] == 24
                file_pts = _file_points(Path(r["run_dir"]))
                assert losses == {s: v for (k, s), v in file_pts.items() if k == "train/loss"}
                logs = api.get(f"/api/v1/runs/{r['id']}/logs", params={"tail": 1000}).json()
                assert any("24/24" in x["line"] for x in logs["lines"])  # the progress line
                ckpts = api.get(f"/api/v1/runs/{r['id']}/checkpoints").json()["checkpoints"]
                assert ckpts and ckpts[-1]["complete"]
                name = ckpts[-1]["name"]
                weights = api.get(f"/api/v1/runs/{r['id']}/checkpoints/{name}/model.safetensors")
                assert weights.status_code == 200
                assert (
                    weights.content
                    == (
                        Path(r["run_dir"]) / "checkpoints" / name / "model.safetensors"
                    ).read_bytes()
                )
            assert "test/loss" in runs[0]["final_metrics"]
        shown = glmx("runs", "list", env=cli_env).stdout
        assert shown.count(" done ") == 3
        for a in agents:
            assert a.wait(timeout=60) == 0
    finally:
        _stop(*agents)
        srv.kill()


@pytest.mark.slow
def test_server_and_two_agents_sqlite(tmp_path):
    _done_when(tmp_path, None)


@pytest.mark.slow
def test_server_and_two_agents_postgres(tmp_path, postgres):
    _done_when(tmp_path, postgres.url)


def _alive_with(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


@pytest.mark.slow
def test_agent_kill9_requeues_and_resumes_exactly(tmp_path):
    # a lease long enough that a busy 2-core machine never expires it by accident, short
    # enough that the killed agent's run is requeued within seconds
    srv = Server(tmp_path / "home", lease=8.0).start()
    agents = []
    try:
        with srv.client() as api:
            victim = api.post(
                "/api/v1/runs", json={"experiment": "tiny_cpu", "overrides": SLOW, "priority": 1}
            ).json()
            agents.append(start_agent(srv.url, tmp_path / "a", log_name="victim-agent"))
            wait_for(
                lambda: api.get(f"/api/v1/runs/{victim['id']}").json()["state"] == "running",
                60,
                "the victim to start",
            )
            ref = api.post(
                "/api/v1/runs", json={"experiment": "tiny_cpu", "overrides": SLOW}
            ).json()
            # it must outwait the victim's lease (8 s): if the reference finishes first, the
            # victim is requeued only after that agent has been idle for a while
            agents.append(start_agent(srv.url, tmp_path / "b", "--exit-when-idle", "30"))

            def checkpointed():
                run = api.get(f"/api/v1/runs/{victim['id']}").json()
                ckpts = api.get(f"/api/v1/runs/{victim['id']}/checkpoints").json()["checkpoints"]
                return run["last_step"] >= 64 and any(c["complete"] for c in ckpts)

            wait_for(checkpointed, 120, "a checkpoint of the victim", poll=0.2)
            step_at_kill = api.get(f"/api/v1/runs/{victim['id']}").json()["last_step"]
            assert step_at_kill < 512, "the run finished before it could be killed"
            os.kill(agents[0].pid, signal.SIGKILL)
            agents[0].wait()
            # the training process died with its agent: nothing runs twice at once
            wait_for(lambda: not _alive_with(victim["run_dir"] + " "), 10, "the trainer to die")
            final = wait_for(
                lambda: (
                    (r := api.get(f"/api/v1/runs/{victim['id']}").json())["state"]
                    in ("done", "failed")
                    and r
                ),
                240,
                "the victim to finish on the other agent",
            )
            assert final["state"] == "done", final
            assert final["attempt"] == 2 and final["agent_id"] != victim.get("agent_id")
            assert "preempted" in [e["what"] for e in final["events"]]
            done_ref = wait_for(
                lambda: (r := api.get(f"/api/v1/runs/{ref['id']}").json())["state"] == "done" and r,
                240,
                "the reference run",
            )
            # resumed from its checkpoint, not from scratch: attempt 2 started past step 0
            out = (Path(final["run_dir"]) / "output.log").read_text()
            assert "attempt 2:" in out and "ckpt_path=last" in out
            for key in ("train/loss", "val/loss"):
                got, want = _points(api, victim["id"], key), _points(api, ref["id"], key)
                assert got == want, key
            assert final["final_metrics"]["train/loss"] == done_ref["final_metrics"]["train/loss"]
    finally:
        _stop(*agents)
        srv.kill()


@pytest.mark.slow
def test_server_restart_mid_run_loses_nothing(tmp_path, postgres):
    srv = Server(tmp_path / "home", db_url=postgres.url, lease=30.0).start()
    agent = start_agent(srv.url, tmp_path / "a", "--exit-when-idle", "5", "--heartbeat", "1")
    try:
        with srv.client() as api:
            run = api.post(
                "/api/v1/runs",
                json={"experiment": "tiny_cpu", "overrides": SLOW, "name": "survivor"},
            ).json()
            wait_for(
                lambda: api.get(f"/api/v1/runs/{run['id']}").json()["last_step"] >= 16,
                120,
                "the run to report",
                poll=0.05,
            )
        srv.kill()  # kill -9 mid-run
        srv.start()  # same port, same database
        with srv.client() as api:
            final = wait_for(
                lambda: (
                    (r := api.get(f"/api/v1/runs/{run['id']}").json())["state"]
                    in ("done", "failed")
                    and r
                ),
                240,
                "the run to finish",
            )
            assert final["state"] == "done" and final["attempt"] == 1, final
            run_dir = Path(final["run_dir"])
            want = _file_points(run_dir)
            got = {}
            for key in api.get(f"/api/v1/runs/{run['id']}/metrics/keys").json()["keys"]:
                got.update({(key, s): v for s, v in _points(api, run["id"], key).items()})
            assert got == want
            lines = api.get(f"/api/v1/runs/{run['id']}/logs", params={"tail": 10000}).json()
            assert len(lines["lines"]) == len((run_dir / "output.log").read_text().splitlines())
            assert [x["seq"] for x in lines["lines"]] == list(range(len(lines["lines"])))
        assert agent.wait(timeout=60) == 0
    finally:
        _stop(agent)
        srv.kill()


@pytest.mark.slow
def test_external_run_reports_with_the_callback(tmp_path):
    srv = Server(tmp_path / "home").start()
    try:
        run_dir = tmp_path / "outside"
        cmd = [
            sys.executable,
            "-m",
            "glmx.train",
            "-cp",
            str(CONFIGS),
            "experiment=tiny_cpu",
            "test=false",
            f"hydra.run.dir={run_dir}",
            f"platform.url={srv.url}",
            "+platform.flush_s=0.2",
        ]
        r = subprocess.run(
            cmd, env=env(), capture_output=True, text=True, timeout=240, cwd=tmp_path
        )
        assert r.returncode == 0, r.stderr[-3000:]
        with srv.client() as api:
            runs = api.get("/api/v1/runs").json()["runs"]
            assert len(runs) == 1 and runs[0]["external"] and runs[0]["state"] == "done"
            rid = runs[0]["id"]
            assert runs[0]["experiment"] == "tiny_cpu"
            want = {s: v for (k, s), v in _file_points(run_dir).items() if k == "train/loss"}
            assert _points(api, rid, "train/loss") == want
            # the platform cannot act on runs it does not run
            assert api.post(f"/api/v1/runs/{rid}/actions/stop").status_code == 409
    finally:
        srv.kill()


@pytest.mark.slow
def test_stop_requeue_and_agent_shutdown_go_through_job_control(tmp_path):
    srv = Server(tmp_path / "home").start()
    first = start_agent(srv.url, tmp_path / "a", "--heartbeat", "0.3", log_name="first")
    second = None
    try:
        with srv.client() as api:
            run = api.post(
                "/api/v1/runs", json={"experiment": "tiny_cpu", "overrides": LONG}
            ).json()
            rid = run["id"]
            get = lambda: api.get(f"/api/v1/runs/{rid}").json()  # noqa: E731
            wait_for(lambda: get()["last_step"] >= 8, 120, "the run to train", poll=0.05)
            # stop: a checkpoint through glmx's job control, then a clean exit
            assert api.post(f"/api/v1/runs/{rid}/actions/stop").status_code == 200
            stopped = wait_for(lambda: (r := get())["state"] in FINAL and r, 60, "the stop")
            assert stopped["state"] == "preempted" and stopped["exit_code"] == 0, stopped
            ckpt = stopped["summary"]["last_checkpoint"]
            assert ckpt and Path(ckpt).name == f"checkpoint-{stopped['summary']['step']}"
            assert stopped["summary"]["step"] < 2048
            # requeue: the same agent resumes it from that checkpoint
            assert api.post(f"/api/v1/runs/{rid}/actions/requeue").json()["state"] == "queued"
            wait_for(
                lambda: (r := get())["attempt"] == 2 and r["last_step"] > stopped["last_step"],
                120,
                "the resumed run to train",
                poll=0.05,
            )
            # SIGTERM: the agent checkpoints the run, hands it back and exits
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=90) == 0
            back = get()
            assert back["state"] == "queued", back
            assert [e["what"] for e in back["events"]][-1] == "returned"
            second = start_agent(
                srv.url, tmp_path / "b", "--exit-when-idle", "3", log_name="second"
            )
            final = wait_for(lambda: (r := get())["state"] in FINAL and r, 180, "the run to end")
            assert final["state"] == "done" and final["attempt"] == 3, final
            assert final["final_metrics"]["train/loss"]["step"] == 2048
            out = (Path(final["run_dir"]) / "output.log").read_text()
            assert out.count("ckpt_path=last") == 2  # attempts 2 and 3 resumed
    finally:
        _stop(first, *([second] if second else []))
        srv.kill()
