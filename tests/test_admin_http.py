"""The admin pages and /metrics from the HTTP side: nothing without signing in, CSRF on every form, a
brake on wrong tokens, the timeline's keyset pages, and metrics read back with prometheus_client's
own text parser (the format's reference implementation, not ours).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.http_auth import FailureBrake, Sessions
from bot.model import Address, Inbound, Outbound, OutboundKind
from channels.base import PermanentSendError, RetryableSendError
from channels.sms.simulator import SimulatedModem
from storage.timeline import Cursor, TimelineRepo
from tests.flows import Flow
from tests.sms_support import Recorder, eventually, sms_flow

TOKEN = "adm1n-token"
SCRAPE = "scrape-only"
PLUGINS = ["handlers.store", "handlers.customers", "handlers.budtenders", "handlers.admin"]


@pytest.fixture
async def site() -> AsyncIterator[tuple[Flow, str]]:
    flow = await Flow.create(plugins=PLUGINS, demo=True, admin_token=TOKEN, metrics_token=SecretStr(SCRAPE))
    port = await flow.app.http.start("127.0.0.1", 0)
    try:
        yield flow, f"http://127.0.0.1:{port}"
    finally:
        await flow.close()


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies for 127.0.0.1 too


async def _sign_in(http: aiohttp.ClientSession, base: str, token: str = TOKEN) -> aiohttp.ClientResponse:
    form = await (await http.get(f"{base}/admin/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    return await http.post(f"{base}/admin/login", data={"csrf": csrf.group(1), "token": token, "next": "/admin/health"},
                           allow_redirects=False)


def _admin_routes(flow: Flow) -> list[tuple[str, str]]:
    found = []
    for route in flow.app.http.web.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if route.method in ("GET", "POST") and (path.startswith("/admin") or path in ("/metrics", "/dashboard")):
            found.append((route.method, path.replace("{person_id}", "1").replace("{handoff_id}", "1")))
    return sorted(set(found) - {("GET", "/admin/login"), ("POST", "/admin/login")})


async def test_without_signing_in_every_admin_route_is_refused(site: tuple[Flow, str]) -> None:
    flow, base = site
    routes = _admin_routes(flow)
    assert ("GET", "/admin/people/1") in routes and ("POST", "/admin/people/1/handoffs/1/reply") in routes
    assert ("GET", "/metrics") in routes and ("GET", "/admin/report/weekly.pdf") in routes
    flow.app.http.brake.max_delay = 0  # many wrong tokens on purpose; the brake has its own test
    async with _session() as http:
        for method, path in routes:
            r = await http.request(method, base + path, headers={"Accept": "text/html"}, allow_redirects=False)
            if method == "GET" and path != "/metrics":
                assert r.status == 303 and r.headers["Location"].startswith("/admin/login?next="), path
            else:
                assert r.status == 401, path
            r = await http.request(method, f"{base}{path}?token={TOKEN}", allow_redirects=False)
            assert r.status == 401, path  # the token is never read from a URL
            r = await http.request(method, base + path, headers={"Authorization": "Bearer wrong"})
            assert r.status == 401, path
            forged = {"huddle_admin": Sessions("another-token").issue()}
            r = await http.request(method, base + path, cookies=forged, allow_redirects=False)
            assert r.status in (303, 401), path
        # the scrape token opens /metrics and nothing else
        r = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE}"})
        assert r.status == 200
        r = await http.get(f"{base}/admin/health", headers={"Authorization": f"Bearer {SCRAPE}"})
        assert r.status == 401
    assert flow.sent_to(Address("sms", "+13235550101")) == []


async def test_sign_in_gives_a_strict_http_only_cookie_and_forms_need_csrf(site: tuple[Flow, str]) -> None:
    flow, base = site
    async with _session() as http:
        r = await _sign_in(http, base)
        assert r.status == 303 and r.headers["Location"] == "/admin/health"
        cookie = r.cookies["huddle_admin"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert TOKEN not in cookie.value
        assert (await http.get(f"{base}/admin/health")).status == 200
        page = await (await http.get(f"{base}/admin/people")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        # a form posted without (or with another session's) CSRF token is refused
        r = await http.post(f"{base}/admin/logout", data={}, allow_redirects=False)
        assert r.status == 401
        other = flow.app.http.sessions.csrf_for("someone-else")
        r = await http.post(f"{base}/admin/logout", data={"csrf": other}, allow_redirects=False)
        assert r.status == 401
        r = await http.post(f"{base}/admin/logout", data={"csrf": csrf.group(1)}, allow_redirects=False)
        assert r.status == 303
        assert (await http.get(f"{base}/admin/health", allow_redirects=False)).status in (303, 401)
        # the sign-in form itself is CSRF-checked, and sends nowhere else than our own pages
        r = await http.post(f"{base}/admin/login", data={"token": TOKEN}, allow_redirects=False)
        assert r.status == 403
        form = await (await http.get(f"{base}/admin/login?next=https://evil.example/")).text()
        assert "evil.example" not in form


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_signing_out_holds_in_every_process_on_the_database(backend: str, tmp_path: Path) -> None:
    """Two processes behind one address (a gateway and a worker, two workers): a cookie signed out
    in one is refused by the other too, not accepted until it expires."""
    from bot.testing import migrated_sqlite
    from bot.testing_pg import admin_url, drop_postgres, fresh_postgres

    if backend == "postgresql":
        if admin_url() is None:
            pytest.skip("HUDDLE_TEST_DATABASE_URL is not set")
        url = await fresh_postgres()
    else:
        url = await migrated_sqlite(tmp_path)
    one = await Flow.create(plugins=PLUGINS, database_url=url, admin_token=TOKEN)
    other = await Flow.create(plugins=PLUGINS, database_url=url, admin_token=TOKEN)
    try:
        base_one = f"http://127.0.0.1:{await one.app.http.start('127.0.0.1', 0)}"
        base_other = f"http://127.0.0.1:{await other.app.http.start('127.0.0.1', 0)}"
        async with _session() as http:
            r = await _sign_in(http, base_one)
            cookie = {"huddle_admin": r.cookies["huddle_admin"].value}
            async with _session() as elsewhere:
                assert (await elsewhere.get(f"{base_other}/admin/health", cookies=cookie)).status == 200
                page = await (await http.get(f"{base_one}/admin/people")).text()
                csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                assert csrf is not None
                r = await http.post(f"{base_one}/admin/logout", data={"csrf": csrf.group(1)}, allow_redirects=False)
                assert r.status == 303
                for base in (base_one, base_other):  # the old cookie, replayed: refused by both
                    r = await elsewhere.get(f"{base}/admin/health", cookies=cookie, allow_redirects=False)
                    assert r.status == 401, base
                    r = await elsewhere.get(f"{base}/admin/health", cookies=cookie, allow_redirects=False,
                                            headers={"Accept": "text/html"})
                    assert r.status == 303 and r.headers["Location"].startswith("/admin/login"), base
                r = await _sign_in(elsewhere, base_other)  # signing in again works at once
                assert r.status == 303
                assert (await elsewhere.get(f"{base_one}/admin/health")).status == 200
    finally:
        await other.close()
        await one.close()
        if backend == "postgresql":
            await drop_postgres(url)


async def test_wrong_tokens_are_slowed_down_and_the_right_one_resets_the_brake() -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    clock = [1000.0]
    brake = FailureBrake(free=3, max_delay=8.0, now=lambda: clock[0], sleep=sleep)
    for _ in range(7):
        await brake.wait("10.0.0.1")
        brake.failed("10.0.0.1")
    assert waited == [1.0, 2.0, 4.0, 8.0]  # three free tries, then doubling, capped
    assert brake.delay_for("10.0.0.2") == 0  # another client is not slowed
    brake.succeeded("10.0.0.1")
    assert brake.delay_for("10.0.0.1") == 0
    for _ in range(5):
        brake.failed("10.0.0.3")
    clock[0] += 3600  # failures are forgotten after the window
    assert brake.delay_for("10.0.0.3") == 0


async def test_the_sign_in_form_brakes_a_guesser(site: tuple[Flow, str]) -> None:
    flow, base = site
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    flow.app.http.brake.sleep = sleep
    async with _session() as http:
        for _ in range(5):
            r = await _sign_in(http, base, token="guess")
            assert r.status == 401 and "That token is not right." in await r.text()
        assert waited == [1.0, 2.0]
        assert (await _sign_in(http, base)).status == 303


async def test_timeline_pages_by_keyset_newest_first_without_gaps(db_url: str) -> None:
    flow = await Flow.create(plugins=PLUGINS, database_url=db_url)
    try:
        ann = await flow.person("Ann Keys", {"customer"}, sms="+15550001111", slack="U0ANN")
        addr = ann.addresses[0]
        await flow.app.dispatcher.drain()  # rows stored here are history, not messages for this worker to claim
        for i in range(60):
            await flow.app.dispatcher.inbox.store(
                Inbound(addr, f"in {i}", f"p{i}", flow.clock.now()), flow.clock.now())
            if i % 2 == 0:
                await flow.app.outbox.repo.enqueue(Outbound(addr, f"out {i}", OutboundKind.REPLY, person_id=ann.id),
                                                   flow.clock.now())
            if i % 20 == 0:
                await flow.clock.advance(60)
        async with flow.app.db.transaction() as conn:
            from storage.inbox import inbound

            await conn.execute(inbound.update().values(person_id=ann.id))
        repo = TimelineRepo(flow.app.db)
        seen: list[tuple[str, int]] = []
        cursor = None
        pages = 0
        while True:
            page = await repo.page(ann.id, cursor, 25)
            pages += 1
            seen += [(e.source, e.id) for e in page.entries]
            keys = [e.key for e in page.entries]
            assert keys == sorted(keys, reverse=True)
            if page.next is None:
                break
            cursor = Cursor.decode(page.next.encode())
        assert pages == 4 and len(seen) == 90 == len(set(seen))
        first = (await repo.page(ann.id, None, 3)).entries
        assert [e.text for e in first] == ["out 58", "out 56", "out 54"]  # at one time: sent after received
        assert Cursor.decode("not a cursor") is None and Cursor.decode("") is None
        assert [f.name for f in await repo.search("keys")] == ["Ann Keys"]
        assert [f.name for f in await repo.search("u0ann")] == ["Ann Keys"]
        assert [f.name for f in await repo.search("(555) 000-1111")] == ["Ann Keys"]
        assert await repo.search("100%_") == []
    finally:
        await flow.close()


async def test_consent_shows_the_message_that_opted_out(site: tuple[Flow, str]) -> None:
    flow, base = site
    maria = await flow.app.people.by_address(Address("sms", "+13235550101"))
    assert maria is not None and maria.id is not None
    await flow.send(maria, "STOP")
    [consent] = await TimelineRepo(flow.app.db).consent(maria.id)
    assert consent.opted_out and "stop" in (consent.keyword or "") and consent.message_text == "STOP"
    async with _session() as http:
        await _sign_in(http, base)
        page = await (await http.get(f"{base}/admin/people/{maria.id}")).text()
        assert "opted out" in page and f"by message #{consent.message_id}" in page
        assert (await http.get(f"{base}/admin/people/999999")).status == 404
        assert (await http.get(f"{base}/admin/people/{maria.id}?before=garbage")).status == 200


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], name: str, **labels: str) -> float:
    family = families[name]
    for sample in family.samples:
        if sample.name in (name, f"{name}_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}: {[s for s in family.samples][:5]}")


async def test_metrics_count_messages_retries_failures_and_jobs(site: tuple[Flow, str]) -> None:
    flow, base = site
    maria = await flow.app.people.by_address(Address("sms", "+13235550101"))
    assert maria is not None
    await flow.send(maria, "POINTS")
    await flow.receive(maria, "POINTS", provider_id="dup-1")
    await flow.receive(maria, "POINTS", provider_id="dup-1")  # a redelivery: stored once
    await flow.settle()
    sms = flow.channels["sms"]
    sms.fail_next(RetryableSendError("429 Too Many Requests", retry_after=5))
    await flow.app.send(maria.addresses[0], "retried", key="r1", kind=OutboundKind.REPLY)  # no quiet hours
    await flow.settle()
    await flow.advance(6)  # the provider's retry_after
    sms.fail_next(PermanentSendError("invalid number"))
    await flow.app.send(Address("sms", "+13235550199"), "doomed", key="d1", kind=OutboundKind.REPLY)
    await flow.settle()
    await flow.app.send(maria.addresses[0], "a promotion", key="q1")  # 04:00 in Los Angeles: held until morning
    await flow.settle()

    async def broken() -> None:
        raise RuntimeError("boom")

    await flow.app.scheduler.run_once("probe_job", "", "p1", broken)
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE}"})
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    m = _families(text)
    assert _value(m, "huddle_inbound_messages", channel="sms", outcome="stored") == 2
    assert _value(m, "huddle_inbound_messages", channel="sms", outcome="duplicate") == 1
    assert _value(m, "huddle_handled_messages", channel="sms", outcome="handled") == 2
    assert _value(m, "huddle_outbound_messages", channel="sms", outcome="retry") == 1
    assert _value(m, "huddle_outbound_messages", channel="sms", outcome="failed") == 1
    assert _value(m, "huddle_outbound_messages", channel="sms", outcome="sent") == 3
    assert _value(m, "huddle_send_retries", channel="sms", reason="rate_limited") == 1
    assert _value(m, "huddle_job_runs", job="probe_job", outcome="failed") == 1
    assert _value(m, "huddle_job_failed_runs", job="probe_job") == 1
    assert m["huddle_send_seconds"].type == "histogram" and m["huddle_handler_seconds"].type == "histogram"
    assert _value(m, "huddle_outbox_messages", channel="sms", status="failed") == 1
    assert _value(m, "huddle_outbox_messages", channel="sms", status="queued") == 1  # the held promotion
    assert _value(m, "huddle_outbox_messages", channel="sms", status="sent") == 3
    assert _value(m, "huddle_channel_up", channel="sms") == 1
    age = _value(m, "huddle_outbox_oldest_unsent_seconds", channel="sms")
    await flow.advance(timedelta(seconds=30))
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        later = _families(await r.text())
    assert _value(later, "huddle_outbox_oldest_unsent_seconds", channel="sms") == age + 30


async def test_metrics_show_the_modem_signal_from_its_health() -> None:
    sim = SimulatedModem(seed=1)
    await sim.start()
    flow, channel = await sms_flow(sim, Recorder(lambda text: f"echo {text}"))
    try:
        flow.app.settings.admin_token = SecretStr(TOKEN)
        port = await flow.app.http.start("127.0.0.1", 0)
        sim.deliver("+15551234567", "hello")
        await eventually(lambda: sim.sent, what="the echo sent through the modem")
        health = await channel.health()
        assert health.detail["signal_dbm"] is not None
        async with aiohttp.ClientSession() as http:
            r = await http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            m = _families(await r.text())
        assert _value(m, "huddle_channel_signal_dbm", channel="sms") == health.detail["signal_dbm"]
        assert _value(m, "huddle_channel_up", channel="sms") == 1
        assert _value(m, "huddle_inbound_messages", channel="sms", outcome="stored") == 1
        from handlers.admin_web import AdminPages

        pages = AdminPages(flow.app)
        [card] = (await pages.health_values())["channels"]
        assert card["up"] and card["detail"]["registered"] and card["detail"]["last_contact"]
        html = pages.jinja.get_template("_health.html").render(**await pages.health_values())
        assert f"<td>{health.detail['signal_dbm']}</td>" in html and "registration" in html
    finally:
        await flow.close()
        await sim.stop()


@pytest.mark.parametrize("command", [["--help"], ["status"]])
def test_operator_commands_load_no_page_metrics_or_browser_library(command: list[str], tmp_path: Path) -> None:
    """prometheus_client, Jinja2 and Playwright load only when pages, metrics or a PDF are served."""
    from bench.startup import ROOT, heavy_imports

    env = {k: v for k, v in os.environ.items() if not k.startswith("HUDDLE_")}
    env.update(HUDDLE_DATABASE_URL=str(tmp_path / "h.db"), HUDDLE_DURABLE_COMMITS="false")
    made = subprocess.run([sys.executable, "main.py", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    assert made.returncode == 0, made.stderr
    found = heavy_imports(["python", "main.py", *command], ROOT, env)
    assert not {"prometheus_client", "jinja2", "playwright"} & set(found), found


async def test_the_budtender_network_page_lists_outside_budtenders_with_points_and_receipts(
        site: tuple[Flow, str]) -> None:
    from coaching.roles import Role
    from storage.budtender_network import BudtenderNetworkRepo, NetworkRow
    from storage.receipts import ReceiptRepo

    flow, base = site
    repo = BudtenderNetworkRepo(flow.app.db, Role.EXTERNAL_BUDTENDER)
    ann = await repo.add(NetworkRow("Ann <Lee>", "Green Cross", "+16195550177", "San Diego"), flow.clock.now())
    await repo.add(NetworkRow("Bob Marsh", "Sweet Leaf", None, "Oakland"), flow.clock.now())
    await ReceiptRepo(flow.app.db).add(budtender_person_id=ann, channel="telegram", address="7001",
                                       image_sha256="ab" * 32, caption="+16195550101", image=b"x",
                                       mimetype="image/jpeg", now=flow.clock.now())
    async with _session() as http:
        assert (await http.get(f"{base}/admin/budtenders", allow_redirects=False)).status in (303, 401)
        await _sign_in(http, base)
        page = await (await http.get(f"{base}/admin/budtenders")).text()
        assert "2 budtenders" in page and "Ann &lt;Lee&gt;" in page and "Bob Marsh" in page
        assert f'href="/admin/people/{ann}"' in page and 'id="receipts"' in page
        page = await (await http.get(f"{base}/admin/budtenders?dispensary=green")).text()
        assert "1 budtender found" in page and "Bob Marsh" not in page
        page = await (await http.get(f"{base}/admin/budtenders?q=oakland")).text()
        listed = page.split('id="receipts"')[0]  # Ann's receipt is still among the recent ones
        assert "Bob Marsh" in listed and "Ann &lt;Lee&gt;" not in listed
