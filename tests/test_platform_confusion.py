"""Confusion matrices of image runs on the platform: a real server and agent train a tiny digits
run launched with the image run fields (``glmx.image.config_from_fields``), the agent posts the
val and test matrices, and the run page draws them as an SVG heat map in a real browser
(Debian's chromium). The endpoint's validation (422), size limit (413), token (401) and
live-run rule (409) are checked over HTTP; class names are rendered as text."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the platform extra is not installed")
pytest.importorskip("transformers", reason="transformers is the vision extra (glmx[vision])")
pytest.importorskip("sklearn", reason="scikit-learn is the vision extra (glmx[vision])")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from platform_support import (  # noqa: E402
    TOKEN,
    Postgres,
    Server,
    env,
    postgres_available,
    show_view,
    start_agent,
    wait_for,
)

from glmx.image import config_from_fields, write_digits  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
XSS = "<img src=x onerror=alert(1)>"
DIGITS = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("confusion")
    home = tmp / "home"
    digits = home / "data" / "digits"
    write_digits(digits)
    srv = Server(home).start()
    overrides = config_from_fields({"root": str(digits), "epochs": 1, "batch_size": 64})
    overrides += [
        "model.warmup_steps=2",
        "trainer.num_sanity_val_steps=0",
        "extras.print_config=false",
    ]
    with srv.client() as api:
        r = api.post(
            "/api/v1/runs",
            json={"experiment": "image_digits_cpu", "overrides": overrides, "name": "digits"},
        )
        assert r.status_code == 201, r.text
        run = r.json()
    quiet = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    agent = start_agent(srv.url, tmp / "agent", extra_env=quiet)
    # meanwhile a run started outside the platform reports with PlatformReporter
    external = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "glmx.train",
            "experiment=image_digits_cpu",
            f"data.root={digits}",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2",
            "trainer.num_sanity_val_steps=0",
            "test=false",
            "optimized_metric=val/accuracy",
            "extras.print_config=false",
            f"hydra.run.dir={tmp / 'external'}",
            f"platform.url={srv.url}",
            "+platform.name=reporter-digits",
            "+platform.flush_s=0.5",
        ],
        cwd=tmp,
        env=env(**quiet),
        stdout=open(tmp / "external.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    yield {"srv": srv, "run": run, "tmp": tmp, "external": external}
    for proc in (agent, external):
        proc.kill()
        proc.wait()
    srv.kill()


def _external(api: httpx.Client, name: str) -> int:
    r = api.post("/api/v1/runs/external", json={"name": name})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _matrix(classes: list[str], step: int = 5, stage: str = "val") -> dict:
    n = len(classes)
    return {
        "stage": stage,
        "step": step,
        "classes": classes,
        "matrix": [[(7 if i == j else (i + j) % 3) for j in range(n)] for i in range(n)],
    }


def test_endpoint_validates_limits_and_stores_the_newest(platform):
    srv = platform["srv"]
    with srv.client() as api:
        rid = _external(api, "api-check")
        url = f"/api/v1/runs/{rid}/confusion"
        assert api.get(url).json() == {"matrices": []}
        ok = _matrix(["cat", "dog", "eel"])
        assert api.post(url, json=ok).json() == {"stored": True, "step": 5}
        stale = {**ok, "step": 3, "matrix": [[0] * 3] * 3}
        assert api.post(url, json=stale).json() == {"stored": False, "step": 5}
        assert api.post(url, json=_matrix(["cat", "dog", "eel"], 9, "test")).status_code == 200
        got = api.get(url).json()["matrices"]
        assert [(m["stage"], m["step"]) for m in got] == [("val", 5), ("test", 9)]
        assert got[0]["classes"] == ["cat", "dog", "eel"] and got[0]["matrix"] == ok["matrix"]

        bad = {
            "non-square": {**ok, "matrix": [[1, 2], [3, 4], [5, 6]]},
            "rows vs classes": {**ok, "matrix": [[1, 2], [3, 4]]},
            "negative count": {**ok, "matrix": [[1, -1, 0], [0, 1, 0], [0, 0, 1]]},
            "float count": {**ok, "matrix": [[1.5, 0, 0], [0, 1, 0], [0, 0, 1]]},
            "string count": {**ok, "matrix": [["3", 0, 0], [0, 1, 0], [0, 0, 1]]},
            "duplicate class": {**ok, "classes": ["cat", "cat", "eel"]},
            "unknown field": {**ok, "extra": 1},
            "bad stage": {**ok, "stage": "../val"},
            "too many classes": _matrix([f"c{i}" for i in range(257)]),
        }
        for what, body in bad.items():
            r = api.post(url, json=body)
            assert r.status_code == 422, (what, r.status_code, r.text)
        r = api.post(url, json={**ok, "matrix": [[1, 2], [3, 4], [5, 6]]})
        assert "matrix row 0 has 2 columns for 3 classes" in r.text
        big = json.dumps({**ok, "classes": ["x" * 200] * 3, "pad": "y" * (1 << 20)})
        r = api.post(url, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert httpx.post(srv.url + url, json=ok).status_code == 401
        assert api.post("/api/v1/runs/999999/confusion", json=ok).status_code == 404
        assert api.get("/api/v1/runs/999999/confusion").status_code == 404
        api.post(f"/api/v1/runs/{rid}/state", json={"state": "done"}).raise_for_status()
        assert api.post(url, json=ok).status_code == 409  # a finished run takes no more data


@pytest.mark.parametrize("db", ["sqlite-0001", "postgresql"])
def test_an_upgraded_database_and_postgres_store_matrices(tmp_path, db):
    """A database made by the first migration gets the artifacts table at server start; the
    newest-step rule holds on PostgreSQL too."""
    pg = None
    if db == "postgresql":
        if not postgres_available():
            pytest.skip("PostgreSQL 15 is not installed (apt-get install postgresql-15)")
        pg = Postgres().start()
        url = pg.url
    else:
        from alembic import command
        from alembic.config import Config
        from sqlalchemy import inspect

        from glmx.platform.db import MIGRATIONS_DIR, Database

        (tmp_path / "home").mkdir()
        url = f"sqlite:///{tmp_path / 'home' / 'old.db'}"
        old = Database(url)
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with old.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        assert "run_artifacts" not in inspect(old.engine).get_table_names()
        old.dispose()
    srv = Server(tmp_path / "home", db_url=url).start()
    try:
        with srv.client() as api:
            rid = _external(api, db)
            url_ = f"/api/v1/runs/{rid}/confusion"
            for step, stored in ((4, True), (2, False), (4, True), (8, True)):
                body = _matrix(["a", "b"], step)
                assert api.post(url_, json=body).json()["stored"] is stored, step
            got = api.get(url_).json()["matrices"]
            assert [(m["stage"], m["step"]) for m in got] == [("val", 8)]
    finally:
        srv.kill()
        if pg is not None:
            pg.stop()


def test_reporter_sends_the_val_matrix_of_a_run_started_elsewhere(platform):
    proc = platform["external"]
    assert proc.wait(timeout=240) == 0, (platform["tmp"] / "external.log").read_text()[-3000:]
    with platform["srv"].client() as api:
        runs = api.get("/api/v1/runs", params={"q": "reporter-digits"}).json()["runs"]
        assert [(r["state"], r["external"]) for r in runs] == [("done", True)]
        mats = api.get(f"/api/v1/runs/{runs[0]['id']}/confusion").json()["matrices"]
    assert [(m["stage"], m["step"]) for m in mats] == [("val", 4)]
    assert mats[0]["classes"] == DIGITS and sum(map(sum, mats[0]["matrix"])) == 128


class Page:
    """A logged-in page that records console errors and dialogs."""

    def __init__(self, browser, url: str, viewport=(1280, 800)) -> None:
        self.ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url + "/")
        self.page.fill("#token", TOKEN)
        self.page.click("#login")
        self.page.wait_for_selector("#runs tbody tr")
        self.url = url

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        w = self.page.viewport_size["width"]
        self.page.locator("#confusion-section").scroll_into_view_if_needed()
        self.page.mouse.move(0, 0)  # no hover outline in the picture
        time.sleep(0.2)
        self.page.screenshot(path=str(ARTIFACTS / f"platform-{name}-{w}.png"))

    def show(self, hash_: str) -> None:
        show_view(self.page, self.url, hash_)

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        self.ctx.close()


@pytest.fixture(scope="module")
def browser(platform):
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def _finished(platform) -> dict:
    with platform["srv"].client() as api:
        rid = platform["run"]["id"]

        def done():
            run = api.get(f"/api/v1/runs/{rid}").json()
            return run if run["state"] in ("done", "failed", "cancelled") else None

        run = wait_for(done, 240, "the digits run to finish", poll=1.0)
        assert run["state"] == "done", run
        return api.get(f"/api/v1/runs/{rid}/confusion").json()["matrices"]


def test_digits_run_page_draws_the_confusion_matrix(platform, browser):
    from glmx.platform import Client

    mats = _finished(platform)
    with Client(platform["srv"].url, TOKEN) as client:
        assert client.confusion(platform["run"]["id"]) == mats
    assert [m["stage"] for m in mats] == ["val", "test"]
    for m in mats:
        assert m["classes"] == DIGITS and len(m["matrix"]) == 10
        assert sum(map(sum, m["matrix"])) == 269  # every val / test image counted once
        assert m["step"] == 20
    rid = platform["run"]["id"]
    for viewport in ((1280, 800), (390, 844)):
        pg = Page(browser, platform["srv"].url, viewport)
        pg.show(f"#/run/{rid}")
        svg = pg.page.wait_for_selector("#confusion svg")
        assert svg.get_attribute("data-classes") == "10"
        assert pg.page.locator("#confusion rect[data-cell]").count() == 100
        assert pg.page.locator("#confusion .row-label text").all_text_contents() == DIGITS
        assert pg.page.locator("#confusion .col-label text").all_text_contents() == DIGITS
        assert pg.page.locator("#confusion-classes tbody tr").count() == 10
        # the test stage is shown first; the picker switches to val
        options = pg.page.locator("#confusion-stage option").all_text_contents()
        assert options == ["val (step 20)", "test (step 20)"]
        assert pg.page.input_value("#confusion-stage") == "test"
        test = mats[1]["matrix"]
        right = sum(test[i][i] for i in range(10))
        assert f"{right} of 269 right" in pg.page.inner_text("#confusion-info")
        title = pg.page.locator('#confusion rect[data-cell="3,3"] title').text_content()
        assert title.startswith(f"true 3, predicted 3: {test[3][3]} of {sum(test[3])} (")
        pg.shot("confusion")
        pg.page.select_option("#confusion-stage", "val")
        assert pg.page.inner_text("#confusion-info").startswith("val, step 20:")
        assert pg.page.locator("#confusion rect[data-cell]").count() == 100
        pg.close()


def test_class_names_are_text_and_runs_without_a_matrix_show_none(platform, browser):
    with platform["srv"].client() as api:
        hostile = _external(api, "hostile classes")
        body = _matrix([XSS, "a&b", "x" * 60])
        assert api.post(f"/api/v1/runs/{hostile}/confusion", json=body).status_code == 200
        plain = _external(api, "no matrix")
        many = _external(api, "many classes")
        names = [f"class {i}" for i in range(256)]
        diag = {"stage": "val", "step": 1, "classes": names}
        diag["matrix"] = [
            [5 * (i == j) + (j == (i + 1) % 256) for j in range(256)] for i in range(256)
        ]
        assert api.post(f"/api/v1/runs/{many}/confusion", json=diag).status_code == 200
    pg = Page(browser, platform["srv"].url)
    pg.show(f"#/run/{hostile}")
    pg.page.wait_for_selector("#confusion svg")
    labels = pg.page.locator("#confusion .row-label title").all_text_contents()
    assert labels == [XSS, "a&b", "x" * 60]
    shown = pg.page.locator("#confusion .col-label text").all_text_contents()
    assert shown == [XSS[:13] + "\u2026", "a&b", "x" * 13 + "\u2026"]  # long names shortened
    assert pg.page.locator("img").count() == 0
    assert pg.page.locator("#confusion-stage").is_hidden()  # one stage: no picker
    # 256 classes: one pixel per cell, the hovered cell named in the info line
    pg.show(f"#/run/{many}")
    cells = pg.page.wait_for_selector('#confusion svg[data-classes="256"] image.cells')
    assert cells.get_attribute("data-cells") == str(256 * 256)
    assert pg.page.locator("#confusion rect[data-cell]").count() == 0
    box = cells.bounding_box()
    pg.page.mouse.move(box["x"] + box["width"] * 10.5 / 256, box["y"] + box["height"] * 10.5 / 256)
    assert (
        pg.page.inner_text("#confusion-info") == "true class 10, predicted class 10: 5 of 6 (83.3%)"
    )
    pg.show(f"#/run/{plain}")  # drawn after its matrices were fetched (and none found)
    assert pg.page.locator("#confusion-section").is_hidden()
    pg.close()


def test_leaving_a_run_page_stops_its_polling_and_socket(platform, browser):
    """The run page polls every 3 s and holds a metrics socket; both end when the user moves on
    (one page's cleanup used to replace the other's, so the polling outlived the page)."""
    with platform["srv"].client() as api:
        rid = _external(api, "left behind")
    pg = Page(browser, platform["srv"].url)
    sockets = []
    pg.page.on("websocket", lambda ws: sockets.append(ws))
    polls = []
    pg.page.on("request", lambda r: f"/api/v1/runs/{rid}/" in r.url and polls.append(r.url))
    pg.show(f"#/run/{rid}")
    pg.page.wait_for_selector("#checkpoints td.muted")
    wait_for(lambda: sockets, 10, "the run page to open its socket")
    pg.show("#/agents")
    wait_for(lambda: sockets[0].is_closed(), 10, "the run page's socket to close")
    before = len(polls)
    pg.page.wait_for_timeout(4000)  # longer than one polling interval; events arrive meanwhile
    assert polls[before:] == []
    pg.close()
