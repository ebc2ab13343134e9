"""POS webhooks from the POS's side: signatures, replays, limits, then orders, points and refunds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.testing import migrated_sqlite
from coaching.pos import legacy_sign, sign
from coaching.sources.pos import OrderProcessed, on_order
from coaching.sources.store_csv import ImportOptions, StoreImporter
from handlers.store import services
from storage.sales import TransactionStatus
from tests.flows import Flow

SECRET = "whsec_test_123"
START = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


class Pos:
    """A fake POS posting signed events to the real HTTP server on 127.0.0.1."""

    def __init__(self, flow: Flow, session: aiohttp.ClientSession, port: int) -> None:
        self.flow = flow
        self.session = session
        self.url = f"http://127.0.0.1:{port}/webhooks/pos"

    async def post(self, payload: Any, *, secret: str = SECRET, signature: str | None = None,
                   timestamp: float | None = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json",
                   "X-Huddle-Timestamp": str(int(timestamp if timestamp is not None
                                                 else self.flow.clock.now().timestamp()))}
        sig = signature if signature is not None else sign(
            secret, body, timestamp if timestamp is not None else self.flow.clock.now().timestamp())
        if sig:
            headers["X-Huddle-Signature"] = sig
        async with self.session.post(self.url, data=body, headers=headers) as resp:
            return resp.status, await resp.json()


def order(event_id: str, order_id: str, total: str, *, status: str = "completed", customer: str | None = "C1",
          budtender: str | None = "E1", event_type: str = "order.created", **extra: Any) -> dict[str, Any]:
    data = {"id": order_id, "store": "main", "customer_id": customer, "customer_phone": "+16195550101",
            "budtender_id": budtender, "occurred_at": "2026-11-23T17:59:00Z", "total": total, "status": status,
            "items": [{"sku": "P1", "name": "House OG 3.5g", "category": "flower", "quantity": 1,
                       "unit_price": total}], **extra}
    return {"id": event_id, "type": event_type, "created_at": "2026-11-23T18:00:00Z", "data": data}


@pytest.fixture
async def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> AsyncIterator[tuple[Flow, Pos]]:
    """The store plugin on each backend, with a budtender (E1) and a rewards customer (C1)."""
    async for pair in _store(monkeypatch, tmp_path, db_url):
        yield pair


@pytest.fixture
async def gate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[tuple[Flow, Pos]]:
    """The same on SQLite only: for requests refused at the door (nothing reaches the database)."""
    async for pair in _store(monkeypatch, tmp_path, None):
        yield pair


async def _store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str | None
                 ) -> AsyncIterator[tuple[Flow, Pos]]:
    monkeypatch.setenv("HUDDLE_POS_WEBHOOK_SECRET", SECRET)
    stores = [{"code": "main", "name": "Main St", "timezone": "America/Los_Angeles"}]
    flow = await Flow.create(plugins=["handlers.store"], start=START, database_url=db_url, config={"stores": stores})
    staff_csv = tmp_path / "staff.csv"
    staff_csv.write_text("Employee ID,Name,Phone\nE1,Sarah Kim,(619) 555-0190\n")
    customers_csv = tmp_path / "customers.csv"
    customers_csv.write_text("Customer ID,First Name,Last Name,Phone,Points\nC1,Ann,Lee,619-555-0101,0\n")
    importer = StoreImporter(flow.app.db, flow.app.people, flow.clock.now)
    await importer.run("staff", staff_csv, ImportOptions(progress=False))
    await importer.run("customers", customers_csv, ImportOptions(progress=False))
    port = await flow.app.http.start("127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        yield flow, Pos(flow, session, port)
    await flow.app.http.stop()
    await flow.close()


async def balances(flow: Flow) -> tuple[int, int]:
    svc = services(flow.app)
    customer = await svc.customers.by_external_id("C1")
    sarah = await flow.app.people.by_external_id("pos-staff:E1")
    assert customer and customer.id and sarah and sarah.id
    return await svc.loyalty.customer_balance(customer.id), await svc.loyalty.person_balance(sarah.id)


async def test_order_stores_transaction_and_awards_points(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    seen: list[OrderProcessed] = []

    async def hook(done: OrderProcessed) -> None:
        seen.append(done)

    on_order(flow.app, hook)
    status, body = await pos.post(order("evt-1", "T1", "45.99"))
    assert (status, body) == (200, {"ok": True, "event_id": "evt-1", "duplicate": False})
    await services(flow.app).ingest.idle()
    txn = await services(flow.app).sales.get("T1")
    assert txn is not None and txn.total == Decimal("45.99") and txn.budtender_person_id is not None
    assert [i.name for i in txn.items] == ["House OG 3.5g"]
    assert await balances(flow) == (45, 450)
    assert len(seen) == 1 and seen[0].is_new and seen[0].transaction.external_id == "T1"
    event = await services(flow.app).ingest.events.by_event_id("evt-1")
    assert event and event.processed_at is not None and event.error is None


async def test_replay_is_handled_once(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    for _ in range(3):
        status, body = await pos.post(order("evt-1", "T1", "20.00"))
        assert status == 200
    assert body["duplicate"] is True
    await services(flow.app).ingest.idle()
    assert await balances(flow) == (20, 200)
    assert await services(flow.app).ingest.events.count() == 1


async def test_refund_reverses_points_exactly(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    await pos.post(order("evt-1", "T1", "10.10"))
    await pos.post(order("evt-2", "T2", "0.99"))
    await pos.post(order("evt-3", "T1", "10.10", status="refunded", event_type="order.updated"))
    await services(flow.app).ingest.idle()
    assert await balances(flow) == (0, 0)
    t1 = await services(flow.app).sales.get("T1")
    assert t1 and t1.status is TransactionStatus.REFUNDED
    customer = await services(flow.app).customers.by_external_id("C1")
    assert customer and customer.lifetime_spend == Decimal("0.99") and customer.visits == 1
    # A corrected total on a completed order replaces the award (not a second award).
    await pos.post(order("evt-4", "T2", "30.50", event_type="order.updated"))
    await services(flow.app).ingest.idle()
    assert await balances(flow) == (30, 300)


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "md5=abc", "garbage"])
async def test_bad_or_missing_signature_is_401_and_stores_nothing(gate: tuple[Flow, Pos], signature: str) -> None:
    flow, pos = gate
    status, body = await pos.post(order("evt-x", "TX", "99.00"), signature=signature)
    assert status == 401 and "Signature" in body["error"]
    assert await services(flow.app).ingest.events.count() == 0
    assert await services(flow.app).sales.get("TX") is None


async def test_wrong_secret_and_stale_timestamp_are_401(gate: tuple[Flow, Pos]) -> None:
    flow, pos = gate
    status, _ = await pos.post(order("evt-x", "TX", "99.00"), secret="not-the-secret")
    assert status == 401
    status, body = await pos.post(order("evt-y", "TY", "9.00"), timestamp=START.timestamp() - 301)
    assert status == 401 and "timestamp" in body["error"]
    status, _ = await pos.post(order("evt-z", "TZ", "9.00"), timestamp=START.timestamp() + 299)
    assert status == 200
    assert await services(flow.app).ingest.events.count() == 1


async def test_a_captured_request_replayed_an_hour_later_is_refused(gate: tuple[Flow, Pos]) -> None:
    """The open door of issue 17: body + signature seen an hour ago, sent again with a fresh timestamp."""
    flow, pos = gate
    body = json.dumps(order("evt-cap", "TC", "50.00")).encode()
    captured = sign(SECRET, body, flow.clock.now().timestamp() - 3600)
    status, reply = await pos.post(None, raw=body, signature=captured)  # X-Huddle-Timestamp is "now"
    assert status == 401 and "window" in reply["error"]
    forged = captured.replace(f"t={int(flow.clock.now().timestamp()) - 3600}", f"t={int(flow.clock.now().timestamp())}")
    status, reply = await pos.post(None, raw=body, signature=forged)  # a fresher t is not covered by the HMAC
    assert status == 401 and reply["error"] == "bad X-Huddle-Signature"
    assert await services(flow.app).ingest.events.count() == 0


async def test_the_old_body_only_signature_is_refused_unless_enabled(gate: tuple[Flow, Pos],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    flow, pos = gate
    body = json.dumps(order("evt-old", "TO", "5.00")).encode()
    status, reply = await pos.post(None, raw=body, signature=legacy_sign(SECRET, body))
    assert status == 401 and "HUDDLE_POS_WEBHOOK_LEGACY_SIGNATURE" in reply["error"]
    monkeypatch.setattr(services(flow.app).settings, "pos_webhook_legacy_signature", True)
    status, reply = await pos.post(None, raw=body, signature=legacy_sign(SECRET, body))
    assert status == 200, reply
    status, reply = await pos.post(None, raw=body, signature=legacy_sign("other", body))
    assert status == 401


async def test_several_v1_during_a_secret_rotation(gate: tuple[Flow, Pos], monkeypatch: pytest.MonkeyPatch) -> None:
    """Stripe sends one v1 per active secret; Huddle accepts the new and, while configured, the previous one."""
    from pydantic import SecretStr

    flow, pos = gate
    now = int(flow.clock.now().timestamp())
    body = json.dumps(order("evt-rot", "TR", "7.00")).encode()
    both = sign("whsec_new", body, now) + "," + sign(SECRET, body, now).split(",")[1]
    status, _ = await pos.post(None, raw=body, signature=both)  # v1 of the old secret matches the current one
    assert status == 200
    monkeypatch.setattr(services(flow.app).settings, "pos_webhook_secret", SecretStr("whsec_new"))
    monkeypatch.setattr(services(flow.app).settings, "pos_webhook_previous_secret", SecretStr(SECRET))
    body2 = json.dumps(order("evt-rot2", "TR2", "7.00")).encode()
    status, _ = await pos.post(None, raw=body2, signature=sign(SECRET, body2, now))  # POS not switched yet
    assert status == 200
    status, _ = await pos.post(None, raw=body2, signature=f"t={now},v0=" + "0" * 64)  # other schemes ignored
    assert status == 401


async def test_body_over_one_megabyte_is_413(gate: tuple[Flow, Pos]) -> None:
    flow, pos = gate
    big = order("evt-big", "TB", "1.00", note="x" * (1024 * 1024))
    status, _ = await pos.post(big)
    assert status == 413
    assert await services(flow.app).ingest.events.count() == 0


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"id": "e", "type": "order.created", "data": {"id": "T", "total": "1.00"}}).encode(),
     "data.occurred_at"),
    (json.dumps({"id": "e", "type": "order.deleted", "data": {}}).encode(), "type"),
    (json.dumps({"type": "order.created", "data": {}}).encode(), "id"),
    (json.dumps(order("e", "T", "abc")).encode(), "data.total"),
    (json.dumps(order("e", "T", "1.001")).encode(), "data.total"),
])
async def test_malformed_events_are_400_with_reason(gate: tuple[Flow, Pos], raw: bytes, reason: str) -> None:
    flow, pos = gate
    status, body = await pos.post(None, raw=raw)
    assert status == 400 and reason in body["error"]
    assert await services(flow.app).ingest.events.count() == 0


async def test_customer_created_and_unknown_customer_order(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    data = {"id": "C9", "first_name": "Bo", "phone": "(619) 555-0109", "vip_tier": "Gold"}
    status, _ = await pos.post({"id": "evt-c", "type": "customer.created", "data": data})
    assert status == 200
    await pos.post(order("evt-o", "T9", "12.00", customer="C9", budtender="E404"))
    await pos.post(order("evt-p", "T10", "5.00", customer="C77", customer_phone=None))
    await services(flow.app).ingest.idle()
    svc = services(flow.app)
    bo = await svc.customers.by_external_id("C9")
    assert bo and bo.phone == "+16195550109" and bo.vip_tier == "Gold" and bo.visits == 1
    assert await svc.loyalty.customer_balance(bo.id or 0) == 12
    t9 = await svc.sales.get("T9")
    assert t9 and t9.budtender_person_id is None and t9.budtender_external_id == "E404"
    stub = await svc.customers.by_external_id("C77")  # unknown to the CRM: a stub record, not a member yet
    assert stub and not stub.rewards_member and await svc.loyalty.customer_balance(stub.id or 0) == 0


async def test_failed_processing_is_recorded_and_retried(store: tuple[Flow, Pos], monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    flow, pos = store
    ingest = services(flow.app).ingest
    real = ingest.apply_orders
    calls = 0

    async def flaky(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await real(*args)

    monkeypatch.setattr(ingest, "apply_orders", flaky)
    status, _ = await pos.post(order("evt-1", "T1", "8.00"))
    assert status == 200
    await ingest.idle()
    event = await ingest.events.by_event_id("evt-1")
    assert event and event.processed_at is None and "database hiccup" in (event.error or "")
    assert await ingest.retry_pending() == 1
    assert await balances(flow) == (8, 80)
    assert await ingest.retry_pending() == 0


async def test_webhooks_off_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUDDLE_POS_WEBHOOK_SECRET", raising=False)
    flow = await Flow.create(plugins=["handlers.store"], start=START)
    port = await flow.app.http.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            pos = Pos(flow, session, port)
            status, _ = await pos.post(order("evt-1", "T1", "8.00"))
        assert status == 503
    finally:
        await flow.app.http.stop()
        await flow.close()


async def test_event_acknowledged_before_a_crash_is_processed_on_restart(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("HUDDLE_POS_WEBHOOK_SECRET", SECRET)
    url = await migrated_sqlite(tmp_path)
    config = {"stores": [{"code": "main", "name": "Main St", "timezone": "America/Los_Angeles"}]}
    flow = await Flow.create(plugins=["handlers.store"], start=START, database_url=url, config=config)
    ingest = services(flow.app).ingest
    monkeypatch.setattr(ingest, "_ensure_worker", lambda: None)  # the process dies right after the 200
    row_id, _ = await ingest.accept(json.dumps(order("evt-1", "T1", "12.00", customer=None)).encode())
    assert row_id is not None
    await flow.close()
    flow = await Flow.create(plugins=["handlers.store"], start=START, database_url=url, config=config)
    try:
        txn = await services(flow.app).sales.get("T1")
        assert txn is not None and txn.total == Decimal("12.00")
        event = await services(flow.app).ingest.events.by_event_id("evt-1")
        assert event and event.processed_at is not None
    finally:
        await flow.close()
