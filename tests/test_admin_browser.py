"""The admin pages in a real browser: Debian's headless Chromium driven by Playwright's Python client.

One journey as the owner would take it: sign in with the token, find a demo customer, open her
timeline, see a text she sends from the console appear there without a reload, answer her handoff
from the page (the answer leaves through the outbox), then the health page (refreshing by itself)
and the weekly report. Each page is screenshotted to test-artifacts/ and checked for its parts; a
phone-sized viewport shows one column. No request leaves 127.0.0.1 (no CDN, fonts or scripts).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from channels.console import ConsoleUI
from tests.flows import Flow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "owner-s3cret-token"
PLUGINS = ["handlers.store", "handlers.customers", "handlers.budtenders", "handlers.team_leads",
           "handlers.sales_managers", "handlers.admin"]


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is not installed (Debian's chromium)")
async def test_the_owner_signs_in_follows_a_customer_and_answers_her(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    flow = await Flow.create(plugins=PLUGINS, demo=True, admin_token=TOKEN)
    port = await flow.app.http.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    outside: list[str] = []
    errors: list[str] = []
    try:
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(viewport={"width": 1100, "height": 900})
                page = await context.new_page()
                page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname != "127.0.0.1" else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))

                # signing in: the page redirects to the form; a wrong token is refused, the right one lets in
                await page.goto(f"{base}/admin/people")
                assert urlparse(page.url).path == "/admin/login"
                await page.fill("#token", "not-the-token")
                await page.click("button[type=submit]")
                assert "That token is not right." in await page.inner_text("[role=alert]")
                await page.screenshot(path=str(ARTIFACTS / "admin_login.png"))
                await page.fill("#token", TOKEN)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/admin/people")
                [cookie] = [c for c in await context.cookies() if c["name"] == "huddle_admin"]
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]

                # find the demo customer by part of her phone number, then by name
                for query in ("550101", "lopez"):  # the form submits: wait for its page before reading it
                    await page.fill("input[name=q]", query)
                    async with page.expect_navigation():
                        await page.press("input[name=q]", "Enter")
                    assert "Maria Lopez" in await page.inner_text("#results")
                await page.screenshot(path=str(ARTIFACTS / "admin_people.png"))
                await page.click("#results a:text-is('Maria Lopez')")
                await page.wait_for_selector("#person-name")
                assert await page.inner_text("#person-name") == "Maria Lopez"
                assert await page.inner_text("#roles") == "customer"
                assert "+13235550101" in await page.inner_text("#consent")
                assert "opted in" in await page.inner_text("#consent")
                timeline = page.locator("#timeline")
                assert "order DEMO-C1001-1" in await timeline.inner_text()  # POS orders and points are on it
                assert await page.locator("#timeline li.points").count() == 3

                # she texts from the console; the page shows it without a reload
                console = ConsoleUI(flow.app, stdout=io.StringIO())
                await console.act_as("Maria Lopez")
                await console.say("HUMAN please, is the Mota OG in stock?")
                await flow.settle()
                arrived = page.locator("#timeline li.in", has_text="is the Mota OG in stock?")
                await arrived.wait_for(timeout=10_000)
                await page.locator("#timeline li.handoff", has_text="asked for a person").wait_for(timeout=10_000)
                await page.screenshot(path=str(ARTIFACTS / "admin_timeline.png"), full_page=True)

                # answer the open handoff from the page: it goes out through the outbox to her phone
                await page.reload()
                form = page.locator("[id^=handoff-] form")
                await form.locator("textarea").fill("Yes, two left at the counter for you.")
                await form.locator("button", has_text="Send reply").click()
                await page.wait_for_selector("[role=status]")
                assert (await page.inner_text("[role=status]")).startswith("Sent to Maria Lopez (#")
                await flow.settle()
                texts = flow.channels["sms"].bodies()
                assert any(t.endswith(": Yes, two left at the counter for you.") for t in texts), texts
                sent = page.locator("#timeline li.out", has_text="Yes, two left at the counter for you.")
                assert await sent.locator(".pill", has_text="sent").count() + \
                    await sent.locator(".pill", has_text="delivered").count() == 1
                await page.screenshot(path=str(ARTIFACTS / "admin_person.png"), full_page=True)

                # a phone: one column
                await page.set_viewport_size({"width": 390, "height": 844})
                columns = await page.eval_on_selector(".grid", "e => getComputedStyle(e).gridTemplateColumns")
                assert len(columns.split()) == 1, columns
                await page.screenshot(path=str(ARTIFACTS / "admin_person_phone.png"), full_page=True)
                await page.set_viewport_size({"width": 1100, "height": 900})

                # health: channels, queues, jobs; it refreshes by itself
                await page.goto(f"{base}/admin/health")
                names = await page.eval_on_selector_all("#channels .channel", "els => els.map(e => e.dataset.channel)")
                assert {"sms", "slack", "telegram"} <= set(names)
                assert "sms" in await page.inner_text("#outbox-depth")
                assert "weekly_report" in await page.inner_text("#jobs")
                await page.wait_for_selector("#live[data-refreshed]", timeout=10_000)
                await page.screenshot(path=str(ARTIFACTS / "admin_health.png"), full_page=True)

                # the weekly report
                await page.goto(f"{base}/admin/report/weekly")
                assert (await page.inner_text("#report-title")).startswith("Weekly report 20")
                assert await page.locator("#sales svg").count() == 1
                # this deployment has no playbooks plugin, and the report says so (test_playbooks_report.py
                # renders the real section)
                assert "Playbook ROI: no playbooks module" in await page.inner_text("main")
                await page.screenshot(path=str(ARTIFACTS / "admin_report.png"), full_page=True)

                # signing out ends the session
                await page.click("button:text-is('Sign out')")
                await page.wait_for_url(f"{base}/admin/login")
                await page.goto(f"{base}/admin/health")
                assert urlparse(page.url).path == "/admin/login"
            finally:
                await browser.close()
    finally:
        await flow.close()
    assert outside == [] and errors == []
