"""The console in a real browser: headless Chromium (Debian's package) driven by Selenium with
chromium-driver, against ``agentcron up`` (beat and both workers as real processes).

Logs in with the token, sees the jobs, triggers a window and watches its cell turn succeeded
without a reload, sees the run's usage and the job's spend today, pauses and resumes, has an
action without CSRF refused, sees a dead letter a worker took off its queue on the Fleet page
and purges it, and sees no job name without the token. It writes the README's screenshots to docs/.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import SYSTEM_CLOCK, FrozenClock
from agentcron.jobs import SYNC_QUEUE
from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.spend.store import SpendStore
from agentcron.spend.usage import ModelUsage
from agentcron.windows import window_key
from tests.poison_entries import envelope, push
from tests.services import free_port, missing, wait_for

pytestmark = pytest.mark.integration
AGENTCRON = str(Path(sys.executable).with_name("agentcron"))
DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "browser-test-token-0123456789"
AGENTS = """
import asyncio

def digest(ctx):
    ctx.log.info("read %d tickets", 42)
    ctx.log.info("wrote the digest for %s", ctx.window_key)
    ctx.usage(model="gpt-4o-mini", input_tokens=18_400, output_tokens=1_250, cost_usd=0.0035)
    ctx.usage(model="claude-haiku", input_tokens=6_100, output_tokens=900, cost_usd=0.0061)
    return {"summary": "42 tickets, 3 urgent: billing outage, SSO loop, export timeout"}

async def prices(ctx):
    await asyncio.sleep(0.2)
    return {"best": "ACME", "change_pct": 2.4}

def churn(ctx):
    return {"summary": "7 customers at risk"}
"""
SCHEDULE = """
from agentcron import Job, Limit

LIMITS = [Limit("openai", concurrency=2, per_minute=60)]
JOBS = [
    Job("ticket_digest", agent="console_agents:digest", schedule="0 6 * * *", tz="Europe/Paris",
        budget={"cost_usd": 2.0, "per": "day"}),
    Job("market_prices", agent="console_agents:prices", schedule="0 * * * *", limits=["openai"]),
    Job("churn_report", agent="console_agents:churn", schedule="0 7 * * mon", window="week"),
    Job("log_scan", agent="console_agents:churn", schedule="*/15 * * * *"),
]
"""


def _history(ledger: Ledger, clock: FrozenClock) -> None:
    """Thirty days of daily windows and a day of hourly ones, with a few failures and misses
    (recorded as they would have been: the ledger's clock moves with the windows)."""
    now = SYSTEM_CLOCK.now().replace(minute=0, second=0, microsecond=0)
    plans = [("ticket_digest", timedelta(days=1), 30, 5), ("market_prices", timedelta(hours=1), 40, 2),
             ("log_scan", timedelta(minutes=15), 30, 1)]  # fmt: skip
    shift = timedelta(hours=4)  # the daily job's 06:00 Paris is not midnight UTC
    windows = sorted((now - step * i - (shift if step >= timedelta(days=1) else timedelta()), job, i)
                     for job, step, count, phase in plans for i in range(count, 0, -1))  # fmt: skip
    phases = {job: phase for job, _, _, phase in plans}
    for token, (start, job, i) in enumerate(windows, start=2):
        window = NewWindow(job, start, window_key(job, start), start)
        clock.set(max(start + timedelta(seconds=1 + i % 3), clock.now()))
        if (i + phases[job]) % 11 == 0:
            ledger.mark_terminal(window, RunState.MISSED, "scheduler down")
            continue
        ledger.claim(window, token, "worker-1:4242", 3, running=True)
        clock.advance(1.0 + (i % 5) * 0.7)
        failed = (i + phases[job]) % 7 == 0
        ledger.complete(job, start, token, RunState.FAILED if failed else RunState.SUCCEEDED,
                        result=None if failed else {"summary": f"ok {i}"},
                        error_type="TimeoutError" if failed else None,
                        error_message="upstream API did not answer in 30s" if failed else None)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium")
    if not chromium or not driver_path:
        missing("chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1360,900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "console_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    clock = FrozenClock(SYSTEM_CLOCK.now() - timedelta(days=40))
    ledger = Ledger(f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}", clock)
    _history(ledger, clock)
    now = SYSTEM_CLOCK.now()
    spend = SpendStore(ledger.engine)
    for hours, job, cost in ((1, "market_prices", 0.0184), (2, "market_prices", 0.0207),
                             (1, "log_scan", 0.0011)):  # fmt: skip
        at = now - timedelta(hours=hours)
        spend.record(job, at, window_key(job, at), 1,
                     {"gpt-4o-mini": ModelUsage(52_000, 3_100, cost, 4)}, now)  # fmt: skip
    ledger.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
    env["AGENTCRON_WEB_TOKEN"] = TOKEN
    out = (tmp_path / "up.out").open("wb")
    proc = subprocess.Popen([AGENTCRON, "up", "--data-dir", "data", "--web-port", str(port),
                             "--no-first-run"], cwd=tmp_path, env=env, stdout=out,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: "console: http://" in (tmp_path / "up.out").read_text(), timeout=60,
                 interval=0.3, what="the console's URL on up's terminal")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


def _state(driver: Any, key: str) -> str | None:
    found = driver.execute_script(
        "var c = document.querySelector('.cell[data-key=\"' + arguments[0] + '\"]');"
        "return c ? c.getAttribute('data-state') : null;", key)
    return None if found is None else str(found)


def _present(driver: Any, css: str, timeout: float = 15.0) -> Any:
    """The element ``css`` once the page shows it (a form POST's answer may not be loaded yet)."""
    from selenium.webdriver.common.by import By

    found: list[Any] = []

    def shown() -> list[Any]:
        found[:] = driver.find_elements(By.CSS_SELECTOR, css)
        return found

    wait_for(shown, timeout=timeout, interval=0.2, what=f"{css} on the page")
    return found[0]


def test_console_in_a_real_browser(browser: Any, console: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    data = tmp_path / "data"  # up's --data-dir: its ledger and embedded broker

    browser.get(console + "/")
    assert "ticket_digest" not in browser.page_source and "Log in" in browser.page_source
    browser.get(console + "/jobs/ticket_digest")
    assert "ticket_digest" not in browser.page_source

    browser.get(f"{console}/?token={TOKEN}")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "tr[data-job]")) == 4, timeout=15,
             what="the four jobs")
    assert "token=" not in browser.current_url  # the token left the address bar
    DOCS.mkdir(exist_ok=True)
    browser.save_screenshot(str(DOCS / "console-jobs.png"))

    browser.get(console + "/jobs/ticket_digest")
    browser.find_element(By.ID, "trigger").click()
    flash = _present(browser, ".flash").text
    assert flash.startswith("sent ticket_digest@"), flash
    key = flash.split()[1]
    browser.get(console + "/")
    browser.execute_script("window.notReloaded = true;")
    wait_for(lambda: _state(browser, key) == "succeeded", timeout=60, interval=0.5,
             what=f"the cell of {key} to turn succeeded")
    assert browser.execute_script("return window.notReloaded === true;")

    browser.get(console + "/jobs/ticket_digest")
    browser.find_element(By.ID, "pause").click()
    wait_for(lambda: "ticket_digest paused" in browser.page_source, what="the pause to show")
    browser.find_element(By.ID, "resume").click()
    wait_for(lambda: "ticket_digest resumed" in browser.page_source, what="the resume to show")
    assert browser.find_elements(By.ID, "pause")

    status = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch('/jobs/ticket_digest/pause', {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'force=1'})"
        ".then(function (r) { done(r.status); });")
    assert status == 403
    assert browser.find_elements(By.ID, "pause")  # still not paused

    browser.get(console + f"/runs/{key}")
    assert "read 42 tickets" in browser.page_source
    assert "claude-haiku" in browser.page_source and "$0.0096" in browser.page_source  # usage total
    browser.save_screenshot(str(DOCS / "console-run.png"))
    browser.get(console + "/")
    digest = browser.find_element(By.CSS_SELECTOR, 'tr[data-job="ticket_digest"] td.spend').text
    assert "$0.0096" in digest and "left per day" in digest, digest
    browser.get(console + "/fleet")
    wait_for(lambda: "agentcron.sync" in browser.page_source and "sync@" in browser.page_source
             and "async@" in browser.page_source and "— leader" in browser.page_source,
             timeout=30, interval=0.5,
             what="both workers' heartbeats on the fleet page")  # fmt: skip
    push(f"sqla+sqlite:///{data / 'broker.sqlite'}", SYNC_QUEUE,
         envelope("no.such.task", {}, SYNC_QUEUE))  # a worker must dead-letter it
    wait_for(lambda: "unknown_task" in " ".join(
        row.text for row in browser.find_elements(By.CSS_SELECTOR, "tr[data-dead-letter]")),
        timeout=60, interval=0.5, what="the dead letter on the fleet page")
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-limit="openai"]')
    browser.set_window_size(1360, 1300)  # the whole page, dead letters and limits included
    browser.save_screenshot(str(DOCS / "console-fleet.png"))
    browser.set_window_size(1360, 900)
    browser.find_element(By.ID, "purge-dead-letters").click()
    _present(browser, "#confirm-purge").click()
    wait_for(lambda: "purged 1 dead letter(s)" in browser.page_source, what="the purge to show")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-dead-letter]")
    browser.get(console + "/jobs/ticket_digest")
    browser.save_screenshot(str(DOCS / "console-job.png"))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    browser.get(console + "/jobs/ticket_digest?by=hour")
    browser.save_screenshot(str(DOCS / "console-job-dark.png"))
    browser.set_window_size(390, 844)  # a phone
    browser.get(console + "/")
    assert browser.execute_script("return document.documentElement.scrollWidth <= 400;")
    browser.save_screenshot(str(DOCS / "console-phone.png"))
