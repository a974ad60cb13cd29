"""The run queue under load: 300 queued runs, 4 real agent processes, each run executed exactly
once, on SQLite and on a real PostgreSQL (a throwaway cluster started here).

The runs are of the built-in ``smoke`` kind (a few records per run, executed inside the agent;
see glmx.platform.smoke) so that 300 of them fit in seconds; claims, heartbeats, metric
reports and state transitions are the real ones over HTTP."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the platform extra is not installed")
from platform_support import Postgres, Server, postgres_available, start_agent, wait_for  # noqa: E402

N_RUNS = 300
N_AGENTS = 4


@pytest.fixture(scope="module")
def postgres():
    if not postgres_available():
        pytest.skip("PostgreSQL 15 is not installed (apt-get install postgresql-15)")
    pg = Postgres().start()
    yield pg
    pg.stop()


def _queue_run(tmp_path: Path, db_url: str | None) -> None:
    srv = Server(tmp_path / "home", db_url=db_url, lease=10.0).start()
    agents = []
    try:
        with srv.client() as api:
            ids = []
            for i in range(N_RUNS):
                r = api.post(
                    "/api/v1/runs",
                    json={
                        "kind": "smoke",
                        "name": f"q{i}",
                        "overrides": ["steps=3", "checkpoint_every=1"],
                    },
                )
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            t0 = time.monotonic()
            agents = [
                start_agent(
                    srv.url, tmp_path / f"a{i}", "--exit-when-idle", "3", log_name=f"agent{i}"
                )
                for i in range(N_AGENTS)
            ]

            def finished():
                page = api.get(
                    "/api/v1/runs", params={"state": "queued,claimed,running", "limit": 1}
                ).json()
                return page["total"] == 0

            wait_for(finished, 400, "the queue to drain", poll=0.5)  # ~20-60 s on 2 cores
            elapsed = time.monotonic() - t0
            runs = api.get("/api/v1/runs", params={"limit": 1000}).json()["runs"]
        by_id = {r["id"]: r for r in runs}
        assert sorted(by_id) == sorted(ids)
        assert collections.Counter(r["state"] for r in runs) == {"done": N_RUNS}
        # each run claimed once, executed once, by an agent that reported it
        assert all(r["attempt"] == 1 for r in runs)
        for r in runs:
            executions = Path(srv.home / "runs" / f"run-{r['id']}") / "executions.log"
            assert len(executions.read_text().splitlines()) == 1, r["id"]
            assert r["final_metrics"]["train/loss"]["step"] == 3
        per_agent = collections.Counter(r["agent_id"] for r in runs)
        assert len(per_agent) >= 2, per_agent  # the work was shared
        for a in agents:
            assert a.wait(timeout=30) == 0
        print(f"{N_RUNS} runs, {N_AGENTS} agents: {elapsed:.1f} s; per agent {dict(per_agent)}")
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
                a.wait()
        srv.kill()


@pytest.mark.slow
def test_300_runs_4_agents_sqlite(tmp_path):
    _queue_run(tmp_path, None)


@pytest.mark.slow
def test_300_runs_4_agents_postgres(tmp_path, postgres):
    _queue_run(tmp_path, postgres.url)
