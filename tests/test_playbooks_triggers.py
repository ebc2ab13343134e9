"""Playbook triggers beyond orders: a schedule (a crontab line on the app's clock) fires once per
period, a restart included; a receipt's award and a points reversal start journeys like any event."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.model import Address
from bot.testing import migrated_sqlite
from coaching.playbooks import SCHEDULE
from handlers.customers import CONSOLE_STAFF
from handlers.playbooks import playbooks_of
from storage.events import EventLog
from storage.playbooks import PlaybookRepo
from tests.fakes.openai_server import FakeOpenAI
from tests.flows import Flow
from tests.receipts_support import CUSTOMER_PHONE, HOUSE, STORE, network_budtender, photo_file, reading, receipt_photo

MORNING = {"name": "morning", "trigger": "schedule", "schedule": "0 10 * * *", "holdout": 0.0,
           "marketing": False, "condition": "customer.points >= 0",
           "steps": [{"send": "Good morning {{ customer.first_name }}, {{ event.date }}"}]}
STORES = [{"code": "main", "name": "Main St", "timezone": "America/Los_Angeles"}]
PLUGINS = ["handlers.store", "handlers.customers", "handlers.playbooks"]
# 16:00 UTC = 08:00 in Los Angeles: the schedule's 10:00 is two hours away
START = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
ANN, BO = Address("sms", "+16195550101"), Address("sms", "+16195550102")


async def _store(url: str, start: datetime, tmp_path: Path, *, load: bool) -> Flow:
    flow = await Flow.create(plugins=PLUGINS, start=start, database_url=url,
                             config={"stores": STORES, "playbooks": [MORNING]})
    if load:
        from coaching.sources.store_csv import ImportOptions, StoreImporter

        csv = tmp_path / "customers.csv"
        csv.write_text("Customer ID,First Name,Last Name,Phone,Points\nC1,Ann,Lee,619-555-0101,0\n"
                       "C2,Bo,Ng,619-555-0102,0\n")
        await StoreImporter(flow.app.db, flow.app.people, flow.clock.now).run("customers", csv,
                                                                              ImportOptions(progress=False))
    return flow


async def _advance(flow: Flow, hours: float) -> None:
    await flow.advance(timedelta(hours=hours))
    await playbooks_of(flow.app).drain()
    await flow.settle()


async def test_a_schedule_fires_once_per_period_and_not_again_after_a_restart(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    first = await _store(url, START, tmp_path, load=True)
    try:
        await _advance(first, 1.5)  # 09:30 LA
        assert first.sent_to(ANN) == [] and await EventLog(first.app.db).count(SCHEDULE) == 0
        await _advance(first, 0.75)  # 10:15 LA: today's 10:00 has come
        assert first.sent_to(ANN) == ["Good morning Ann, 2026-11-24"]
        assert first.sent_to(BO) == ["Good morning Bo, 2026-11-24"]
        await _advance(first, 3)
        assert len(first.sent_to(ANN)) == 1
        [line] = [x for x in (await _listing(first)).splitlines() if x.startswith("morning ")]
        assert "schedule 0 10 * * *" in line and " active " in line
    finally:
        await first.close()

    # restarted on a clock from before today's run (a replayed misfire): today's period has run
    second = await _store(url, START + timedelta(hours=1.5), tmp_path, load=False)
    try:
        await second.app.scheduler.catch_up()
        await _advance(second, 1)  # 10:30 LA again
        assert second.sent_to(ANN) == []
        [event] = await EventLog(second.app.db).of(types=[SCHEDULE])
        assert (event.source_id, event.payload["date"]) == ("morning:2026-11-24T18:00Z", "2026-11-24")
        assert len(await PlaybookRepo(second.app.db).runs()) == 2  # one per customer
        await _advance(second, 24)  # the next day's 10:00: the next period, once
        assert second.sent_to(ANN) == ["Good morning Ann, 2026-11-25"]
        assert await EventLog(second.app.db).count(SCHEDULE) == 2
        assert len(await PlaybookRepo(second.app.db).runs(limit=10)) == 4
    finally:
        await second.close()


async def _listing(flow: Flow) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert await _cli(flow, "playbooks", "list") == 0
    return out.getvalue()


def test_a_bad_schedule_is_refused_by_check(tmp_path: Path) -> None:
    from coaching.playbooks import PlaybookError, load_file

    path = tmp_path / "s.toml"
    path.write_text('[[playbooks]]\nname = "s"\ntrigger = "schedule"\nschedule = "0 25 * * *"\n'
                    '[[playbooks.steps]]\nsend = "hi"\n')
    with pytest.raises(PlaybookError, match=r"s\.toml:4: playbooks\[0\] \(s\)\.schedule: '0 25 \* \* \*' is not a"):
        load_file(path)


RECEIPT = {"name": "receipt-thanks", "trigger": "receipt.awarded", "holdout": 0.0, "marketing": False,
           "condition": "event.customer_points >= 10 && event.house_total > 40.0",
           "steps": [{"send": "Thanks for shopping {{ event.store }}: {{ event.customer_points }} points "
                              "for receipt {{ event.receipt_number }}."}]}
REVERSED = {"name": "reversal-note", "trigger": "points.reversed", "holdout": 0.0, "marketing": False,
            "condition": "event.delta < 0",
            "steps": [{"notify": "{{ event.delta }} points taken back ({{ event.reason }})"}]}


async def _cli(flow: Flow, *argv: str) -> Any:
    name, *rest = argv
    command = flow.app.cli_commands[name]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return await command.run(flow.app, parser.parse_args(rest))


async def test_a_receipt_award_and_a_reversal_start_journeys(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from storage.store_import import ProductRow, StoreImportWriter

    async with FakeOpenAI() as ai:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key")
        monkeypatch.setenv("HUDDLE_OPENAI_BASE_URL", ai.base_url)
        flow = await Flow.create(plugins=["handlers.store", "handlers.enrollment", "handlers.external_budtenders",
                                          "handlers.customers", "handlers.playbooks"],
                                 start=datetime(2026, 11, 20, 18, 0, tzinfo=UTC),
                                 config={"stores": [STORE], "playbooks": [RECEIPT, REVERSED]})
        try:
            await StoreImportWriter(flow.app.db, flow.app.people).write_products(
                [ProductRow(sku, name, "flower", "MOTA", True, price=Decimal(price)) for sku, name, price in HOUSE],
                {}, flow.clock.now())
            ann = await network_budtender(flow)
            ai.reply_json(reading())
            await flow.send(Address("telegram", "7001"), f"customer {CUSTOMER_PHONE}",
                            files=[photo_file(receipt_photo())])
            await playbooks_of(flow.app).drain()
            await flow.settle()
            customer = Address("sms", CUSTOMER_PHONE)
            assert "Thanks for shopping Green Cross: 45 points for receipt A-1001." in flow.sent_to(customer)
            assert not [t for t in flow.sent_to(Address("telegram", "7001")) if "Thanks for shopping" in t]
            [(run, steps)] = await PlaybookRepo(flow.app.db).runs("receipt-thanks")
            assert run.customer_id is not None and run.person_id != ann.id  # the customer's journey
            assert [(s.kind, s.result) for s in steps] == [("send", "sent")]

            assert await _cli(flow, "points", "reverse", "--receipt", "1", "--reason", "returned") == 0
            await playbooks_of(flow.app).drain()
            await flow.settle()
            notes = flow.sent_to(CONSOLE_STAFF)
            assert sorted(n for n in notes if "taken back" in n) == [
                "[reversal-note] -45 points taken back (returned (by staff))",
                "[reversal-note] -450 points taken back (returned (by staff))"]
            runs = await PlaybookRepo(flow.app.db).runs("reversal-note")
            assert sorted(r.subject for r, _ in runs) == sorted([f"c{run.customer_id}", f"p{ann.id}"])
        finally:
            await flow.close()
