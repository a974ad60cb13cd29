"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real
server and real agents: login, a run submitted from the form training with a live loss chart,
stop, compare, TensorBoard, XSS-safe rendering, no console errors, screenshots of every page
(desktop 1280x800 and phone 390x844) under tests/artifacts/."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the platform extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from platform_support import TOKEN, Server, show_view, start_agent, wait_for  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
XSS = "<img src=x onerror=alert(1)>"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("web")
    srv = Server(tmp / "home", extra_env={"GLMX_TB_IDLE_TIMEOUT": "120"}).start()
    with srv.client() as api:
        # two short runs to compare, a long one to stop, a hostile name
        cmp = [
            api.post(
                "/api/v1/runs",
                json={
                    "kind": "smoke",
                    "name": f"cmp-{i}",
                    "priority": 9,
                    "overrides": ["steps=40", f"lr={(1.0, 0.3)[i]}"],
                },
            ).json()
            for i in range(2)
        ]
        long = api.post(
            "/api/v1/runs",
            json={
                "kind": "smoke",
                "name": "long",
                "priority": 8,
                "overrides": ["steps=100000", "sleep=0.05"],
            },
        ).json()
        xss = api.post(
            "/api/v1/runs",
            json={
                "kind": "smoke",
                "name": XSS,
                "tags": [XSS],
                "priority": -1,
                "overrides": ["steps=1"],
            },
        ).json()
    agents = [start_agent(srv.url, tmp / f"a{i}", log_name=f"agent{i}") for i in range(2)]
    yield {"srv": srv, "cmp": cmp, "long": long, "xss": xss}
    for a in agents:
        a.kill()
        a.wait()
    srv.kill()


@pytest.fixture(scope="module")
def browser(platform):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


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
        self.url = url
        self.allowed: list[str] = []

    def login(self) -> None:
        self.page.goto(self.url + "/")
        self.page.fill("#token", TOKEN)
        self.page.click("#login")
        self.page.wait_for_selector("#runs tbody tr")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        w = self.page.viewport_size["width"]
        self.page.screenshot(path=str(ARTIFACTS / f"platform-{name}-{w}.png"), full_page=False)

    def show(self, hash_: str) -> None:
        show_view(self.page, self.url, hash_)

    def close(self) -> None:
        errors = [e for e in self.errors if not any(a in e for a in self.allowed)]
        assert errors == [], errors
        assert self.dialogs == [], self.dialogs
        self.ctx.close()


def test_login_runs_table_and_xss(platform, browser):
    pg = Page(browser, platform["srv"].url)
    pg.page.goto(pg.url + "/")
    pg.page.wait_for_selector("#token")
    pg.shot("login")
    csp = httpx.get(pg.url + "/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    pg.login()
    row = pg.page.locator(f'tr[data-run="{platform["xss"]["id"]}"]')
    assert row.locator(".run-name").inner_text() == XSS
    assert pg.page.locator("img").count() == 0  # rendered as text, not as an element
    pg.page.select_option("#filter-state", "done")

    def only_done():
        states = pg.page.locator("#runs tbody .state").all_inner_texts()
        return len(states) >= 2 and set(states) == {"done"}

    wait_for(only_done, 60, "the table filtered to done runs")
    pg.page.select_option("#filter-state", "")
    wait_for(lambda: pg.page.locator("#runs tbody tr").count() == 4, 30, "all runs listed")
    pg.shot("runs")
    pg.close()


def test_form_run_trains_with_live_chart_then_tensorboard(platform, browser):
    pg = Page(browser, platform["srv"].url)
    pg.login()
    pg.page.click("text=New run")
    pg.page.wait_for_selector("#experiment")
    pg.page.select_option("#experiment", "tiny_cpu")
    pg.allowed.append("status of 422")  # the validation answer below, shown next to the field
    pg.page.fill("#overrides", "trainer.max_epochs=2\nmodel.nope=1")
    pg.page.click("#submit")
    err = pg.page.wait_for_selector("#overrides-error:not(:empty)")
    assert "model.nope" in err.inner_text() and "line 2" in err.inner_text()
    pg.shot("new")
    overrides = "test=false\ndata.n=8192\ntrainer.max_epochs=2\ntrainer.log_every_n_steps=8"
    pg.page.fill("#overrides", overrides)
    pg.page.fill("#name", "from the form")
    pg.page.click("#submit")
    pg.page.wait_for_selector("#run-title")
    assert "from the form" in pg.page.inner_text("#run-title")
    path = '#charts .chart[data-key="train/loss"] path[data-series="train/loss"]'
    # Record every point count the chart shows from now on (read once later, the first count
    # could already be the last on a slow machine): live updates mean at least two counts.
    pg.page.evaluate(
        """(path) => {
            window.seenCounts = new Set();
            const note = () => {
                const p = document.querySelector(path);
                if (p) window.seenCounts.add(p.getAttribute("data-points"));
            };
            note();
            new MutationObserver(note).observe(document.getElementById("main"),
                { subtree: true, childList: true, attributes: true });
        }""",
        path,
    )
    pg.page.wait_for_selector(path, timeout=120_000)
    pg.page.wait_for_function("() => window.seenCounts.size >= 2", timeout=120_000)
    pg.shot("run")
    pg.page.select_option("#x-axis", "time")
    assert pg.page.locator(f"{path}").count() == 1
    assert "seconds" in pg.page.inner_text('#charts .chart[data-key="train/loss"]')
    pg.page.select_option("#x-axis", "step")
    wait_for(lambda: "done" in pg.page.inner_text("#run-info"), 180, "the run to finish")
    # the page fetches the final checkpoints when the run's state turns final
    pg.page.wait_for_selector("#checkpoints a", timeout=10_000)
    pg.page.click("#open-tb")
    link = pg.page.wait_for_selector("#tb-link", timeout=30_000).get_attribute("href")

    def tb_up():
        try:
            return httpx.get(link, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(tb_up, 90, "TensorBoard to answer")
    assert "tensorboard" in httpx.get(link).text.lower()
    pg.close()


def test_stop_a_running_run(platform, browser):
    pg = Page(browser, platform["srv"].url)
    pg.login()
    rid = platform["long"]["id"]
    pg.show(f"#/run/{rid}")
    wait_for(lambda: "running" in pg.page.inner_text("#run-info"), 120, "the long run to run")
    pg.page.click("#action-stop")
    wait_for(lambda: "preempted" in pg.page.inner_text("#run-info"), 60, "the stopped state")
    pg.close()


def test_compare_and_agents(platform, browser):
    pg = Page(browser, platform["srv"].url)
    pg.login()
    for r in platform["cmp"]:
        pg.page.check(f'tr[data-run="{r["id"]}"] input[type=checkbox]')
    pg.page.click("#compare-selected")
    pg.page.wait_for_selector("#compare-chart svg")
    assert pg.page.locator("#compare-chart path[data-series]").count() == 2
    assert pg.page.locator("#config-diff tr.changed").count() >= 1  # lr=1 vs lr=0.3
    pg.page.check("#logy")
    pg.page.select_option("#compare-axis", "epoch")
    pg.page.select_option("#compare-axis", "step")
    pg.shot("compare")
    pg.page.click("text=Agents")
    pg.page.wait_for_selector("#agents tbody tr")
    assert pg.page.locator("#agents tbody tr").count() == 2
    pg.shot("agents")
    pg.close()


def test_phone_screenshots(platform, browser):
    pg = Page(browser, platform["srv"].url, viewport=(390, 844))
    pg.page.goto(pg.url + "/")
    pg.page.wait_for_selector("#token")
    pg.shot("login")
    pg.login()
    pg.shot("runs")
    for name, hash_, sel in (
        ("run", f"#/run/{platform['cmp'][0]['id']}", "#charts .chart"),
        ("new", "#/new", "#experiment"),
        (
            "compare",
            "#/compare?ids=" + ",".join(str(r["id"]) for r in platform["cmp"]),
            "#compare-chart svg",
        ),
        ("agents", "#/agents", "#agents tbody tr"),
    ):
        pg.show(hash_)
        pg.page.wait_for_selector(sel)
        time.sleep(0.2)
        pg.shot(name)
    pg.close()
