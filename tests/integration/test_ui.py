"""The dashboard in a real browser (headless Chromium driven by Playwright): each page loads without a
console error behind the admin key, the charts draw with data, a filter changes the numbers, a request's
page shows its stage timeline, and the budgets page its limits. ``GATEWAY_UI_SCREENSHOTS=DIR`` saves the
pages' screenshots there (``docs/ui/`` holds the committed ones)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway

pytestmark = pytest.mark.integration

ADMIN = "sk-admin-ui"


def chromium() -> str:
    """Debian's chromium, installed when missing (the test setup's one download, from the package mirror)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, capture_output=True, timeout=600)
        found = shutil.which("chromium")
    assert found, "the dashboard tests need Chromium: apt-get install chromium"
    return found


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    config: dict[str, Any] = gateway_config(free_port())
    config["keys"][0]["limits"] = {"rpm": 1000, "budget_usd": "5"}
    gw = start_gateway(tmp_path_factory.mktemp("ui"), config, replicas=["ingress=1"],
                       extra_env={"GATEWAY_ADMIN_KEY_SHA256": hashlib.sha256(ADMIN.encode()).hexdigest()})
    try:
        with httpx.Client(base_url=gw.base_url, headers={"authorization": f"Bearer {DEMO_KEY}"}, timeout=30) as http:
            for model, n in (("gpt-4o-mini", 4), ("claude-3-5-haiku", 2)):
                for i in range(n):
                    http.post("/v1/chat/completions", json={"model": model, "messages": [
                        {"role": "user", "content": f"ui test {i}: mail jane@example.com"}]}).raise_for_status()
            http.post("/v1/chat/completions", json={"model": "no-such-model", "messages": [
                {"role": "user", "content": "x"}]})
        gw.wait_rows("SELECT count() AS n FROM requests", lambda rows: rows and rows[0]["n"] >= 7)
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        page.close()


def logged_in(page: Page, gateway: RunningGateway, route: str) -> None:
    page.goto(f"{gateway.base_url}/ui#/{route}")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#admin-key", ADMIN)
    page.click("#login-form button")
    loaded(page, route.split("/")[0])


def loaded(page: Page, view: str) -> None:
    """Wait for ``view`` to be drawn; a failure says what the page said (its status line, console errors)."""
    until(page, lambda: page.evaluate("() => document.body.dataset.loaded") == view
          or bool(page.inner_text("#status")), f"the {view} view")
    assert page.evaluate("() => document.body.dataset.loaded") == view, (
        page.inner_text("#status"), page.errors)  # type: ignore[attr-defined]


def shot(page: Page, name: str) -> None:
    where = os.environ.get("GATEWAY_UI_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


def until(page: Page, holds: Callable[[], bool], what: str) -> None:
    """Wait until ``holds()`` (read from Python: the page's CSP forbids the evaluated strings of
    ``wait_for_function``); the bound only ends a failure."""
    deadline = time.monotonic() + 15
    while not holds():
        assert time.monotonic() < deadline, f"{what}: not within 15 s"
        page.wait_for_timeout(50)


def card(page: Page, name: str) -> str:
    return page.inner_text(f"[data-card='{name}'] .v")


def test_a_wrong_key_is_refused_and_the_right_one_opens_the_overview(gateway: RunningGateway, page: Page) -> None:
    page.goto(f"{gateway.base_url}/ui")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#admin-key", "sk-wrong")
    page.click("#login-form button")
    until(page, lambda: bool(page.inner_text("#login-error")), "the refusal shown")
    assert "Incorrect admin key" in page.inner_text("#login-error")
    page.fill("#admin-key", ADMIN)
    page.click("#login-form button")
    loaded(page, "overview")
    assert int(card(page, "requests").replace(",", "")) >= 7
    assert page.locator(".chart svg rect[data-value]").count() > 0  # bars drawn
    assert page.locator(".chart svg polyline.series").count() == 3  # p50, p90, p99
    assert float(card(page, "cost").lstrip("$")) > 0
    shot(page, "overview")
    assert [e for e in page.errors if "401" not in e] == []  # type: ignore[attr-defined]


def test_a_filter_changes_the_numbers(gateway: RunningGateway, page: Page) -> None:
    logged_in(page, gateway, "overview")
    everything = int(card(page, "requests").replace(",", ""))
    page.fill("#f-model", "claude-3-5-haiku")
    page.click("#apply")
    until(page, lambda: card(page, "requests") != str(everything), "the filtered count")
    assert int(card(page, "requests")) == 2
    page.select_option("#f-group", "model")
    page.click("#apply")
    until(page, lambda: page.inner_text(".chart h3") == "Requests by model", "grouped by model")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_request_log_and_one_requests_timeline(gateway: RunningGateway, page: Page) -> None:
    logged_in(page, gateway, "requests")
    rows = page.locator("#log tbody tr")
    assert rows.count() >= 7
    assert "jane@example.com" not in page.inner_text("#log")  # redacted bodies only
    page.select_option("#f-status", "error")
    page.click("#apply")
    until(page, lambda: page.locator("#log tbody tr").count() == 1, "only the refused request")
    assert "no-such-model" in page.inner_text("#log tbody tr")
    page.select_option("#f-status", "")
    page.fill("#f-q", "ui test 3")
    page.click("#apply")
    until(page, lambda: page.locator("#log tbody tr").count() == 1
          and "ui test 3" in page.inner_text("#log tbody tr"), "only the request searched for")
    shot(page, "requests")
    page.click("#log tbody tr a")
    loaded(page, "request")
    rid = page.url.rsplit("/", 1)[-1]
    events = httpx.get(f"{gateway.base_url}/ui/api/requests/{rid}", headers={"authorization": f"Bearer {ADMIN}"},
                       timeout=30).json()["events"]
    assert {e["stage"] for e in events} >= {"redaction", "policy", "routing", "provider", "output_filter"}, events
    assert page.locator("svg rect.stage").count() == len(events)  # a bar per stage event
    assert "<EMAIL_ADDRESS" in page.inner_text("dl")
    shot(page, "request")
    assert page.errors == []  # type: ignore[attr-defined]


def test_budgets_and_breakers(gateway: RunningGateway, page: Page) -> None:
    logged_in(page, gateway, "state")
    scopes = page.inner_text("#scopes")
    assert "key.demo" in scopes and "$5" in scopes
    assert page.locator("#changes tr").count() >= 2  # the config version applied at start, and a header
    shot(page, "state")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_api_refuses_without_the_key_and_bad_parameters(gateway: RunningGateway) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=30) as http:
        assert http.get("/ui/api/overview").status_code == 401
        bad = http.get("/ui/api/overview?range=1y", headers={"authorization": f"Bearer {ADMIN}"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "range"
        bad = http.get("/ui/api/requests?tenant=x';DROP", headers={"authorization": f"Bearer {ADMIN}"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "tenant"
        missing = http.get("/ui/api/requests/01a2433b-d261-720b-ae43-235e20528c83",
                           headers={"authorization": f"Bearer {ADMIN}"})
        assert missing.status_code == 404
        assert http.get("/ui/nope.js").status_code == 404
