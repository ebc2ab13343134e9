"""The staff's commands: import budtenders, list the network, receipts and their state, reverse points."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.errors import UserError
from bot.model import Address
from coaching.loyalty import LoyaltyRules
from coaching.roles import Role
from storage.budtender_network import BudtenderNetworkRepo, network_budtenders
from storage.events import EventLog
from storage.loyalty import POINTS_REVERSED, LoyaltyRepo
from storage.people import persons
from storage.receipts import ReceiptRepo, ReceiptStatus
from tests.fakes.openai_server import FakeOpenAI
from tests.flows import Flow
from tests.receipts_support import CUSTOMER_PHONE, make_flow, network_budtender, photo_file, reading, receipt_photo

# The predecessor's X-Viewer export had these columns; the rows below are made up, with the usual faults.
NETWORK = """Budtender Name,Phone Number,Dispensary,City
Ann Lee,(619) 555-0177,Green Cross,San Diego
Bob Marsh,619-555-0178,green  cross,San Diego
Cara Diaz,+1 213 555 0190,The Higher Path,Sherman Oaks
,619-555-0111,Green Cross,San Diego
Dan Roe,12,The Higher Path,Sherman Oaks
Eve Stone,619 555 0177,Sweet Leaf,Denver
Finn Park,,Sweet Leaf,Denver
Gus Hale,213-555-0199,,Los Angeles
"""


async def cli(flow: Flow, *argv: str) -> Any:
    name, *rest = argv
    command = flow.app.cli_commands[name]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return await command.run(flow.app, parser.parse_args(rest))


async def test_import_budtenders_reports_bad_rows_and_stores_whole_ones(
        db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = await make_flow(monkeypatch, database_url=db_url)
    try:
        path = tmp_path / "xviewer.csv"
        path.write_text(NETWORK)
        assert await cli(flow, "import", "budtenders", str(path), "--no-progress") == 0
        out = capsys.readouterr().out
        assert "8 rows read, 4 imported, 4 skipped" in out
        assert "line 5: no name" in out
        assert "line 6: “12” is not a phone number" in out
        assert "line 7: phone +16195550177 is already on line 2" in out
        assert "line 9: no dispensary" in out
        assert "the network now has 4 budtenders at 3 dispensaries" in out
        # each one is a person with the role and an SMS address; "green  cross" is the same dispensary
        repo = BudtenderNetworkRepo(flow.app.db, Role.EXTERNAL_BUDTENDER)
        found = await repo.list()
        assert [(b.name, b.dispensary, b.phone) for b in found] == [
            ("Ann Lee", "Green Cross", "+16195550177"), ("Bob Marsh", "Green Cross", "+16195550178"),
            ("Finn Park", "Sweet Leaf", None), ("Cara Diaz", "The Higher Path", "+12135550190")]
        ann = await flow.app.people.by_address(Address("sms", "+16195550177"))
        assert ann is not None and ann.roles == {Role.EXTERNAL_BUDTENDER} and ann.name == "Ann Lee"
        # importing again changes nothing (no second person, no second record)
        assert await cli(flow, "import", "budtenders", str(path), "--no-progress") == 0
        async with flow.app.db.read() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(network_budtenders))).scalar() == 4
            assert (await conn.execute(sa.select(sa.func.count()).select_from(persons))).scalar() == 4
        capsys.readouterr()
        assert await cli(flow, "budtenders", "list", "--dispensary", "green") == 0
        out = capsys.readouterr().out
        assert "Ann Lee" in out and "Bob Marsh" in out and "Cara" not in out and "2 budtenders at 1 dispensary" in out
        assert await cli(flow, "budtenders", "list", "--search", "sherman") == 0
        out = capsys.readouterr().out
        assert "Cara Diaz" in out and "Ann" not in out
        assert await cli(flow, "budtenders", "list", "--search", "nobody") == 0
        assert "No budtenders match." in capsys.readouterr().out
    finally:
        await flow.close()


async def test_a_file_without_a_dispensary_column_is_refused_whole(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = await make_flow(monkeypatch)
    try:
        path = tmp_path / "bad.csv"
        path.write_text("name,phone\nAnn,6195550177\n")
        assert await cli(flow, "import", "budtenders", str(path), "--no-progress") == 2
        assert "missing column(s): dispensary" in capsys.readouterr().err
        assert await BudtenderNetworkRepo(flow.app.db, Role.EXTERNAL_BUDTENDER).list() == []
    finally:
        await flow.close()


async def test_budtenders_add_with_an_invite_prints_the_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    flow = await make_flow(monkeypatch)
    try:
        assert await cli(flow, "budtenders", "add", "Hana Kim", "--dispensary", "Cookies", "--phone",
                         "6195550140", "--invite") == 0
        out = capsys.readouterr().out
        assert "Hana Kim of Cookies is person #1." in out and "role external_budtender" in out
        code = next(line.strip() for line in out.splitlines() if line.startswith("    "))
        replies = await flow.send(Address("telegram", "8080"), f"/start {code}")
        assert replies[0].startswith("Welcome, Hana! You're enrolled as partner budtender.")
        person = await flow.app.people.by_address(Address("telegram", "8080"))
        assert person is not None and person.id == 1 and Address("sms", "+16195550140") in person.addresses
        with pytest.raises(UserError, match="not a phone number"):
            await cli(flow, "budtenders", "add", "X", "--dispensary", "Y", "--phone", "12")
    finally:
        await flow.close()


async def test_receipts_list_review_and_points_reverse_from_the_console(
        db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeOpenAI() as ai:
        flow = await make_flow(monkeypatch, ai, database_url=db_url)
        try:
            ann = await network_budtender(flow)
            tg = Address("telegram", "7001")
            ai.reply_json(reading())
            await flow.send(tg, CUSTOMER_PHONE, files=[photo_file(receipt_photo())])
            ai.reply_invalid()
            await flow.send(tg, CUSTOMER_PHONE, files=[photo_file(receipt_photo("second"))])
            capsys.readouterr()
            assert await cli(flow, "receipts", "--pending") == 0
            out = capsys.readouterr().out
            assert out.count("\n") == 1 and "#2" in out and "review" in out
            assert await cli(flow, "receipts") == 0
            out = capsys.readouterr().out
            assert "awarded" in out and "Green Cross #A-1001" in out and "$45.00" in out and "45+450 pts" in out
            assert await cli(flow, "receipts", "review", "2", "--total", "$20.00") == 0
            assert "Receipt #2 confirmed: $20.00 → 20 pts to the customer, 200 pts" in capsys.readouterr().out
            await flow.settle()
            loyalty = LoyaltyRepo(flow.app.db)
            assert await loyalty.person_balance(ann.id) == 650
            # reverse one receipt's points, with the reason kept
            assert await cli(flow, "points", "reverse", "--receipt", "1", "--reason", "customer returned it",
                             "--by", "Rosa") == 0
            out = capsys.readouterr().out
            assert "2 reversing rows written." in out and "customer returned it (by Rosa)" in out
            assert await loyalty.person_balance(ann.id) == 200
            stored = await ReceiptRepo(flow.app.db).get(1)
            assert stored is not None and stored.status is ReceiptStatus.REVERSED
            rows = await loyalty.by_source(receipt_id=1)
            assert [(e.key, e.delta, e.reason, e.note) for e in rows][2:] == [
                ("reverse:receipt:1:customer", -45, "reversal", "customer returned it (by Rosa)"),
                ("reverse:receipt:1:budtender", -450, "reversal", "customer returned it (by Rosa)")]
            reversed_ = await EventLog(flow.app.db).by_source(POINTS_REVERSED, "reverse:receipt:1:budtender")
            assert reversed_ is not None and reversed_.payload["delta"] == -450 and reversed_.person_id == ann.id
            # twice is a no-op
            assert await cli(flow, "points", "reverse", "--receipt", "1", "--reason", "again") == 0
            assert "Nothing to reverse" in capsys.readouterr().out
            assert await cli(flow, "points", "list", "--receipt", "2") == 0
            assert capsys.readouterr().out.count("receipt:2:") == 2
            with pytest.raises(UserError, match="no ledger rows"):
                await cli(flow, "points", "reverse", "--order", "NOPE", "--reason", "x")
        finally:
            await flow.close()


async def test_points_of_a_pos_order_are_reversible_too(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from storage.loyalty import LedgerEntry

    flow = await make_flow(monkeypatch)
    try:
        loyalty = LoyaltyRepo(flow.app.db)
        person = await flow.person("Bo", {Role.BUDTENDER}, phone="+16195550101")
        async with flow.app.db.transaction() as conn:
            await loyalty.add_in(conn, [LedgerEntry("order:T9:budtender", 300, "budtender_bonus", flow.clock.now(),
                                                    person_id=person.id, order_external_id="T9")])
        assert await cli(flow, "points", "reverse", "--order", "T9", "--reason", "test order") == 0
        assert await loyalty.person_balance(person.id or 0) == 0
        assert "order T9" in capsys.readouterr().out
        # the POS refunding the same order later does not take the points away a second time
        from coaching.loyalty import OrderLedger
        from storage.pos_orders import IncomingOrder, OrderParties

        refunded = IncomingOrder(0, "T9", None, flow.clock.now(), Decimal("-30"), status="refunded")
        parties = OrderParties(refunded, None, False, person.id)
        ledger = OrderLedger(LoyaltyRules())
        stored = {"order:T9:budtender": 300}
        async with flow.app.db.transaction() as conn:
            await loyalty.add_in(conn, ledger.change(parties, stored, flow.clock.now()).add)
        assert await loyalty.person_balance(person.id or 0) == 0
        # and reversing it again (the refund row included) changes nothing
        assert await cli(flow, "points", "reverse", "--order", "T9", "--reason", "again") == 0
        assert "Nothing to reverse" in capsys.readouterr().out
        assert await loyalty.person_balance(person.id or 0) == 0
    finally:
        await flow.close()
