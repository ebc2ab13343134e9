"""The Blaze POS sync against a fake partner API: pages, cursors, a crash, a rate limit, an expired key,
and one order from both the webhook and the sync."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.testing import migrated_sqlite
from coaching.pos import parse_event
from coaching.sources.blaze import BUDGET_CALLS, BlazeClient, BlazeSettings, budget_limiter, retry_after_seconds
from coaching.sources.blaze_sync import BlazeSync, order_event
from handlers.store_services import services
from storage.blaze import BlazeRepo
from storage.catalog import products
from storage.customers import customers
from storage.events import ORDER_CREATED, EventLog
from storage.loyalty import LoyaltyRepo
from storage.sales import staff, transactions
from tests.fakes.blaze_server import DISPENSARY_KEY, PARTNER_KEY, FakeBlaze, employee, member, product, transaction
from tests.flows import Flow

START = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
T0 = int((START - timedelta(days=30)).timestamp() * 1000)
STORE = {"code": "silverlake", "name": "MOTA Silverlake", "timezone": "America/Los_Angeles"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBlaze]:
    server = FakeBlaze()
    await server.start()
    yield server
    await server.stop()


def settings(fake: FakeBlaze, **extra: Any) -> BlazeSettings:
    values: dict[str, Any] = {"blaze_api_key": DISPENSARY_KEY, "blaze_partner_key": PARTNER_KEY,
                              "blaze_base_url": fake.url, "blaze_page_size": 500, "blaze_house_brands": ["MOTA"]}
    values.update(extra)
    return BlazeSettings(_env_file=None, **values)  # type: ignore[call-arg]


async def make_flow(database_url: str | None = None) -> Flow:
    return await Flow.create(plugins=["handlers.store", "handlers.blaze"], start=START, config={"stores": [STORE]},
                             database_url=database_url)


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def syncer(flow: Flow, fake: FakeBlaze, sleeps: Sleeps | None = None, **extra: Any) -> BlazeSync:
    svc = services(flow.app)
    await svc.ensure_configured(flow.clock.now())
    conf = settings(fake, **extra)
    client = BlazeClient(conf, sleep=sleeps if sleeps is not None else Sleeps(), now=flow.clock.now)
    return BlazeSync(flow.app.db, flow.app.people, flow.clock, svc.ingest, conf, client,
                     stores=lambda: svc.store_ids, default_store=svc.default_store.code)


def seed(fake: FakeBlaze, orders: int = 1200) -> None:
    fake.add("employees", employee(1, T0), employee(2, T0 + 1))
    fake.add("products", product(1, T0), product(2, T0, brand="Stiiizy"), product(3, T0 + 5))
    fake.add("members", *[member(n, T0 + n) for n in range(1, 4)])
    fake.add("transactions", *[transaction(n, T0 + 1000 + n // 3, member_n=1 + n % 3, seller_n=1 + n % 2)
                               for n in range(1, orders + 1)])


async def count(flow: Flow, table: sa.Table) -> int:
    async with flow.app.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_a_first_sync_pages_through_everything_and_an_incremental_one_reads_only_what_changed(
        fake: FakeBlaze, db_url: str) -> None:
    seed(fake)
    flow = await make_flow(db_url)
    try:
        sync = await syncer(flow, fake)
        report = await sync.run()
        assert report.error is None
        assert [(e.entity, e.rows, e.calls) for e in report.entities] == [
            ("employees", 2, 1), ("products", 3, 1), ("members", 3, 1), ("transactions", 1200, 3)]
        assert (await count(flow, staff), await count(flow, products), await count(flow, customers),
                await count(flow, transactions)) == (2, 3, 3, 1200)
        async with flow.app.db.read() as conn:
            house = (await conn.execute(sa.select(products.c.external_id).where(products.c.house_brand.is_(True))
                                        .order_by(products.c.external_id))).scalars().all()
        assert house == ["p1", "p3"]
        log = EventLog(flow.app.db)
        assert await log.count(ORDER_CREATED) == 1200
        loyalty = LoyaltyRepo(flow.app.db)
        assert len(await loyalty.by_source(order_external_id="t7")) == 2  # the member's 45 and the seller's 450
        # pages asked with the window and skip of the cursor, never the same page twice
        asked = [(c.params["startDate"], c.params["skip"]) for c in fake.calls_of("transactions")]
        assert len(set(asked)) == len(asked) == 3
        cursor = await BlazeRepo(flow.app.db).cursor("transactions")
        assert cursor.window_end_ms is None and cursor.modified_ms == int(START.timestamp() * 1000)

        # later: one new sale and one refund of an old one; only the new window is read
        await flow.clock.advance(600)
        refund_at = int(flow.clock.now().timestamp() * 1000) - 1000
        fake.add("transactions", transaction(7, refund_at, member_n=2, seller_n=2, status="RefundWithInventory") |
                 {"created": T0 + 1002}, transaction(5000, refund_at, member_n=1))
        before = len(fake.calls)
        again = await sync.run(entities=("transactions",))
        assert [(e.rows, e.calls) for e in again.entities] == [(2, 1)]
        assert int(fake.calls[before].params["startDate"]) == cursor.modified_ms
        assert await count(flow, transactions) == 1201
        assert await log.count(ORDER_CREATED) == 1201  # the refund is not a new order
        t7 = await loyalty.by_source(order_external_id="t7")
        assert sum(e.delta for e in t7) == 0 and {e.reason for e in t7} == {"purchase", "budtender_bonus", "refund"}
    finally:
        await flow.close()


async def test_the_webhook_and_the_sync_seeing_one_order_make_one_order_one_event_one_award(
        fake: FakeBlaze, db_url: str) -> None:
    seed(fake, orders=5)
    flow = await make_flow(db_url)
    try:
        svc = services(flow.app)
        sync = await syncer(flow, fake)
        await sync.run(entities=("employees", "members"))
        # the webhook delivers order t3 first, under the same POS order id
        hook = {"id": "evt_webhook_t3", "type": "order.created", "data": {
            "id": "t3", "customer_id": "m1", "budtender_id": "e2", "occurred_at": "2026-10-21T18:00:00Z",
            "total": "45.00", "status": "completed",
            "items": [{"sku": "p1", "name": "MOTA Product 1", "quantity": 1, "unit_price": "45.00"}]}}
        await svc.ingest.accept(json.dumps(hook).encode())
        await svc.ingest.idle()
        await sync.run(entities=("products", "transactions"))
        log = EventLog(flow.app.db)
        assert await log.count(ORDER_CREATED) == 5
        event = await log.by_source(ORDER_CREATED, "t3")
        assert event is not None
        assert await count(flow, transactions) == 5
        rows = await LoyaltyRepo(flow.app.db).by_source(order_external_id="t3")
        assert sorted(e.key for e in rows) == ["order:t3:budtender", "order:t3:customer"]
        # and the other way round: the sync saw t4 first, the webhook later changes nothing
        again = {**hook, "id": "evt_webhook_t4", "data": {**hook["data"], "id": "t4"}}
        await svc.ingest.accept(json.dumps(again).encode())
        await svc.ingest.idle()
        assert await log.count(ORDER_CREATED) == 5
        assert len(await LoyaltyRepo(flow.app.db).by_source(order_external_id="t4")) == 2
    finally:
        await flow.close()


async def test_a_crash_mid_sync_resumes_where_it_stopped_after_a_restart(fake: FakeBlaze, tmp_path: Path) -> None:
    seed(fake)
    url = await migrated_sqlite(tmp_path)
    flow = await make_flow(url)
    try:
        sync = await syncer(flow, fake)
        real_page = sync.client.page
        pages = 0

        async def crashing(entity: str, **kw: Any) -> Any:
            nonlocal pages
            if entity == "transactions":
                pages += 1
                if pages == 3:
                    raise SystemExit("killed")  # the process dies here: nothing after this runs
            return await real_page(entity, **kw)

        sync.client.page = crashing  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            await sync.run()
        await sync.client.aclose()
        assert await count(flow, transactions) == 1000  # two pages committed
        cursor = await BlazeRepo(flow.app.db).cursor("transactions")
        assert cursor.window_end_ms is not None  # a window is half read
    finally:
        await flow.close()

    flow = await make_flow(url)  # the restart: a new process on the same database
    try:
        before = len(fake.calls)
        sync = await syncer(flow, fake)
        report = await sync.run()
        resumed = [c for c in fake.calls[before:] if c.entity == "transactions"]
        assert len(resumed) == 1 and int(resumed[0].params["startDate"]) == cursor.modified_ms
        assert int(resumed[0].params["endDate"]) == cursor.window_end_ms and int(resumed[0].params["skip"]) > 0
        assert report.error is None
        assert await count(flow, transactions) == 1200
        assert await EventLog(flow.app.db).count(ORDER_CREATED) == 1200
        async with flow.app.db.read() as conn:
            from storage.loyalty import loyalty_ledger

            awards = (await conn.execute(sa.select(sa.func.count()).select_from(loyalty_ledger))).scalar_one()
        assert awards == 2400
    finally:
        await flow.close()


async def test_a_429_waits_retry_after_and_the_sync_goes_on(fake: FakeBlaze) -> None:
    seed(fake, orders=10)
    flow = await make_flow()
    try:
        sleeps = Sleeps()
        sync = await syncer(flow, fake, sleeps)
        fake.fail_next(429, retry_after="7", times=2)
        fake.fail_next(503)
        report = await sync.run()
        assert report.error is None and await count(flow, transactions) == 10
        assert sleeps == [7.0, 7.0, 1.0]
        assert [c.status for c in fake.calls[:4]] == [429, 429, 503, 200]
        assert report.entities[0].calls == 4  # retries count against the budget
    finally:
        await flow.close()


async def test_an_expired_key_stops_the_sync_with_the_reason_and_keeps_the_cursor(
        fake: FakeBlaze, capsys: pytest.CaptureFixture[str]) -> None:
    seed(fake, orders=10)
    flow = await make_flow()
    try:
        sync = await syncer(flow, fake)
        await sync.run(entities=("employees",))
        fake.expire_key()
        report = await sync.run()
        assert report.error is not None and "Blaze refused the key (401): Invalid or expired API key" in report.error
        assert await count(flow, transactions) == 0
        cursor = await BlazeRepo(flow.app.db).cursor("employees")
        assert cursor.last_error == report.error and cursor.rows == 2
        command = flow.app.cli_commands["blaze"]
        parser = argparse.ArgumentParser()
        command.configure(parser)
        assert await command.run(flow.app, parser.parse_args(["status"])) == 0
        assert "last error: Blaze refused the key" in capsys.readouterr().out
    finally:
        await flow.close()


async def test_blaze_sync_from_the_cli_with_since_and_a_progress_bar(
        fake: FakeBlaze, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seed(fake, orders=30)
    monkeypatch.setenv("HUDDLE_BLAZE_API_KEY", DISPENSARY_KEY)
    monkeypatch.setenv("HUDDLE_BLAZE_PARTNER_KEY", PARTNER_KEY)
    monkeypatch.setenv("HUDDLE_BLAZE_BASE_URL", fake.url)
    monkeypatch.setenv("HUDDLE_BLAZE_PAGE_SIZE", "10")
    flow = await make_flow()
    try:
        assert "blaze_sync" in flow.app.scheduler.jobs  # the scheduled job exists with a key
        command = flow.app.cli_commands["blaze"]
        parser = argparse.ArgumentParser()
        command.configure(parser)
        args = parser.parse_args(["sync", "--since", "2026-10-01"])
        assert await command.run(flow.app, args) == 0
        captured = capsys.readouterr()
        assert re.search(r"transactions\s+30 rows\s+4 calls", captured.out)
        assert "blaze transactions" in captured.err  # tqdm's bar
        since = int(datetime(2026, 10, 1, 7, tzinfo=UTC).timestamp() * 1000)  # midnight in Los Angeles
        assert int(fake.calls_of("members")[0].params["startDate"]) == since
        with pytest.raises(Exception, match="YYYY-MM-DD"):
            await command.run(flow.app, parser.parse_args(["sync", "--since", "yesterday"]))
    finally:
        await flow.close()


def test_the_limiter_keeps_any_five_minutes_within_the_share() -> None:
    for share in (0.0005, 0.01, 0.1, 0.5, 1.0):
        limiter = budget_limiter(share)
        worst = limiter.max_rate * (1 + 300 / limiter.time_period)  # a full bucket, then 300 s of leaking
        assert worst <= BUDGET_CALLS * share
        assert worst >= BUDGET_CALLS * share * 0.6  # and not needlessly slow


def test_retry_after_is_seconds_or_an_http_date() -> None:
    now = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Fri, 20 Nov 2026 18:00:30 GMT", now) == 30.0
    # RFC 9110's own example of an HTTP date, long past: no wait
    assert retry_after_seconds("Fri, 31 Dec 1999 23:59:59 GMT", now) == 0.0
    assert retry_after_seconds(None, now) == 5.0 and retry_after_seconds("soon", now) == 5.0


def test_open_carts_are_not_orders_and_refunds_go_negative() -> None:
    assert order_event(transaction(1, T0, status="InProgress"), None) is None
    event = order_event(transaction(2, T0, status="RefundWithoutInventory", total=20.0), "silverlake")
    assert event is not None
    data = json.loads(event[2])["data"]
    envelope, parsed = parse_event(event[2].encode())  # what the webhook's parser reads from the same body
    assert parsed.status == "refunded" and str(parsed.total) == "-20.00" and envelope.type == "order.created"
    assert (data["status"], data["total"], data["store"], event[0]) == ("refunded", "-20.00", "silverlake",
                                                                         f"blaze:t2:{T0}")


async def test_pages_served_newest_first_are_read_by_offset_and_nothing_is_missed(fake: FakeBlaze) -> None:
    seed(fake, orders=1200)
    fake.newest_first = True
    flow = await make_flow()
    try:
        report = await (await syncer(flow, fake)).run()
        assert report.error is None and await count(flow, transactions) == 1200
        asked = [int(c.params["skip"]) for c in fake.calls_of("transactions")]
        assert asked == [0, 500, 1000]
    finally:
        await flow.close()
