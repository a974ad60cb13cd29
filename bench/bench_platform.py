"""Platform server latency and ingestion: SQLite and PostgreSQL side by side.

    python bench/bench_platform.py [--requests 600] [--seconds 10]

Starts a real ``glmx server`` (uvicorn on loopback) on SQLite and on a throwaway PostgreSQL 15
cluster (initdb + pg_ctl in a temp dir, as in the tests), then measures with real HTTP clients:

- p50/p99 latency of ``GET /api/v1/runs?limit=50`` (500 runs in the table) and of
  ``POST /api/v1/runs/{id}/metrics`` (one step: 5 points) at 1, 16 and 64 concurrent clients;
- sustained ingestion (points/s) with 8 agents each posting every step of its own run.

Clients are threads in this process, so on a small machine they share the CPU with the server:
the numbers are a floor. Prints a table and the PostgreSQL/SQLite ratios.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from platform_support import TOKEN, Postgres, Server, postgres_available  # noqa: E402

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ERRORS = [0]  # transport errors (connection resets under overload)
KEYS = ("train/loss", "train/lr", "train/grad_norm", "perf/step_time_ms", "perf/tokens_per_sec")


def _setup(url: str, n_runs: int, n_live: int) -> list[tuple[int, int]]:
    """``n_runs`` queued runs; ``n_live`` of them claimed by agents -> [(run_id, attempt)]."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as c:
        for i in range(n_runs):
            c.post("/api/v1/runs", json={"kind": "smoke", "name": f"b{i}"}).raise_for_status()
        live = []
        for _ in range(n_live):
            agent = c.post("/api/v1/agents", json={"host": "bench", "device": "cpu"}).json()
            run = c.post(f"/api/v1/agents/{agent['id']}/claim").json()
            live.append((run["id"], run["attempt"]))
        return live


def _latencies(url: str, clients: int, total: int, make_request) -> list[float]:  # type: ignore[no-untyped-def]
    per = max(1, total // clients)
    out: list[float] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        mine = []
        with httpx.Client(base_url=url, headers=HEADERS, timeout=120) as c:
            for j in range(per):
                t = time.perf_counter()
                try:
                    make_request(c, i, j).raise_for_status()
                except httpx.TransportError:
                    ERRORS[0] += 1  # counted, reported; the latency still counts
                mine.append(time.perf_counter() - t)
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def bench(url: str, requests: int, seconds: float) -> dict[str, float]:
    """All measurements against one server."""
    live = _setup(url, 500, 64)
    steps = [0] * 64
    res: dict[str, float] = {}

    def listing(c, i, j):  # type: ignore[no-untyped-def]
        return c.get("/api/v1/runs", params={"limit": 50})

    def ingest(c, i, j):  # type: ignore[no-untyped-def]
        rid, attempt = live[i]
        steps[i] += 1
        pts = [{"key": k, "step": steps[i], "value": 1.0 / steps[i]} for k in KEYS]
        return c.post(f"/api/v1/runs/{rid}/metrics", json={"attempt": attempt, "points": pts})

    for clients in (1, 16, 64):
        for name, fn in (("list", listing), ("ingest", ingest)):
            lat = _latencies(url, clients, requests, fn)
            res[f"{name}_p50_c{clients}"] = _pct(lat, 0.5)
            res[f"{name}_p99_c{clients}"] = _pct(lat, 0.99)
    # sustained: 8 agents, one POST per training step, for `seconds`
    stop = time.monotonic() + seconds
    counts = [0] * 8

    def agent(i: int) -> None:
        rid, attempt = live[i]
        step = 10_000
        with httpx.Client(base_url=url, headers=HEADERS, timeout=120) as c:
            while time.monotonic() < stop:
                step += 1
                pts = [{"key": k, "step": step, "value": 0.5} for k in KEYS]
                try:
                    c.post(
                        f"/api/v1/runs/{rid}/metrics", json={"attempt": attempt, "points": pts}
                    ).raise_for_status()
                except httpx.TransportError:
                    ERRORS[0] += 1
                    continue
                counts[i] += len(pts)

    t0 = time.monotonic()
    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res["sustained_points_per_s"] = sum(counts) / (time.monotonic() - t0)
    res["transport_errors"] = ERRORS[0]
    ERRORS[0] = 0
    return res


def main() -> None:
    """Runs the benchmark and prints the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=640, help="requests per measurement")
    p.add_argument("--seconds", type=float, default=10.0, help="sustained ingestion duration")
    args = p.parse_args()
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(Path(tmp) / "sqlite-home", lease=3600).start()
        try:
            results["sqlite"] = bench(srv.url, args.requests, args.seconds)
        finally:
            srv.kill()
        if postgres_available():
            pg = Postgres().start()
            try:
                srv = Server(Path(tmp) / "pg-home", db_url=pg.url, lease=3600).start()
                try:
                    results["postgresql"] = bench(srv.url, args.requests, args.seconds)
                finally:
                    srv.kill()
            finally:
                pg.stop()
    names = list(results)
    print(
        f"{'measure':<28}"
        + "".join(f"{n:>14}" for n in names)
        + ("   pg/sqlite" if len(names) == 2 else "")
    )
    for key in results[names[0]]:
        vals = [results[n][key] for n in names]
        unit = "" if key.startswith("sustained") else " ms"
        line = f"{key + unit:<28}" + "".join(f"{v:>14.1f}" for v in vals)
        if len(vals) == 2 and vals[0]:
            line += f"{vals[1] / vals[0]:>12.2f}"
        print(line)


if __name__ == "__main__":
    main()
