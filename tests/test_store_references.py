"""What a POS or an export may get wrong, from its side: a negative sale, a store or a budtender
Huddle does not know. Refused with a reason (a 400, a skipped line) or kept and flagged — never
stored as a new store named after the typo, never a negative sale in anyone's numbers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC
from decimal import Decimal
from pathlib import Path

import pytest

from coaching.sources.store_csv import ImportOptions, StoreImporter
from handlers.store import services
from tests.flows import Flow
from tests.test_store_webhooks import Pos, _store, balances, order


@pytest.fixture
async def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> AsyncIterator[tuple[Flow, Pos]]:
    """The store plugin (store "main", budtender E1, customer C1) behind its real HTTP server."""
    async for pair in _store(monkeypatch, tmp_path, db_url):
        yield pair


async def codes(flow: Flow) -> set[str]:
    return {s.code for s in await services(flow.app).customers.stores()}


async def test_a_negative_sale_is_refused_with_the_reason_and_nothing_is_stored(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    status, body = await pos.post(order("evt-1", "T1", "-45.50"))
    assert status == 400
    assert "negative" in body["error"] and "refunded" in body["error"]
    svc = services(flow.app)
    assert await svc.ingest.events.count() == 0 and await svc.sales.get("T1") is None
    assert await balances(flow) == (0, 0)


async def test_a_refund_may_carry_a_negative_total(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    assert (await pos.post(order("evt-1", "T1", "30.00")))[0] == 200
    status, _ = await pos.post(order("evt-2", "T1", "-30.00", status="refunded", event_type="order.updated"))
    assert status == 200
    await services(flow.app).ingest.idle()
    assert await balances(flow) == (0, 0)  # the award is reversed, nothing more is taken


async def test_a_discount_is_an_amount_off_whatever_its_sign(store: tuple[Flow, Pos]) -> None:
    """Square's Transactions export writes discounts as "-$3.00"; a POS that forwards it is not wrong."""
    flow, pos = store
    assert (await pos.post(order("evt-1", "T1", "27.00", discount="-3.00")))[0] == 200
    await services(flow.app).ingest.idle()
    txn = await services(flow.app).sales.get("T1")
    assert txn is not None and txn.total == Decimal("27.00")


async def test_an_unknown_store_is_refused_not_created(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    status, body = await pos.post(order("evt-1", "T1", "12.00", store="nowhere"))
    assert status == 400
    assert "unknown store 'nowhere'" in body["error"] and "main" in body["error"]
    customer = {"id": "evt-2", "type": "customer.created",
                "data": {"id": "C9", "first_name": "Zed", "store": "nowhere"}}
    assert (await pos.post(customer))[0] == 400
    assert await codes(flow) == {"main"}
    assert await services(flow.app).ingest.events.count() == 0
    # No store named: the first configured one.
    body_ok = order("evt-3", "T3", "12.00")
    del body_ok["data"]["store"]
    assert (await pos.post(body_ok))[0] == 200
    await services(flow.app).ingest.idle()
    txn = await services(flow.app).sales.get("T3")
    assert txn is not None and txn.store_id == services(flow.app).store_ids["main"]


async def test_an_unknown_budtender_is_flagged_and_the_customer_keeps_the_points(store: tuple[Flow, Pos]) -> None:
    flow, pos = store
    status, body = await pos.post(order("evt-1", "T1", "40.00", budtender="E99"))
    assert status == 200 and body["ok"] is True
    assert len(body["warnings"]) == 1 and "unknown budtender 'E99'" in body["warnings"][0]
    await services(flow.app).ingest.idle()
    txn = await services(flow.app).sales.get("T1")
    assert txn is not None and txn.budtender_person_id is None and txn.budtender_external_id == "E99"
    assert await balances(flow) == (40, 0)  # the customer's points; nobody's budtender bonus
    status, body = await pos.post(order("evt-2", "T2", "10.00"))  # a known budtender: no warnings
    assert status == 200 and "warnings" not in body


# -- imports ------------------------------------------------------------------------------------

# Square's Transactions CSV (Dashboard → Transactions → Export): the header and the first data row
# are verbatim from a public script that reads these exports (a Square customer's GitHub project,
# found with the code search); the refund row follows Square's convention of negative amounts with
# "Event Type" Refund, and the discount is negative as Square writes it. Nobody here wrote the format.
SQUARE_HEADER = ("Date,Time,Time Zone,Gross Sales,Discounts,Service Charges,Net Sales,Gift Card Sales,Tax,Tip,"
                 "Partial Refunds,Total Collected,Source,Card,Card Entry Methods,Cash,Square Gift Card,Other Tender,"
                 "Other Tender Type,Other Tender Note,Fees,Net Total,Transaction ID,Payment ID,Card Brand,"
                 "PAN Suffix,Device Name,Staff Name,Staff ID,Details,Description,Event Type,Deposit ID,Location,"
                 "Dining Option,Fee Percentage Rate,Fee Fixed Rate,Refund Reason,Discount Name,"
                 "Transaction Status,Cash App")
SQUARE_ROWS = [
    '2022-11-10,21:50:48,Pacific Time (US & Canada),$22.50,$0.00,$0.00,$22.50,$0.00,$0.00,$0.00,$0.00,$22.50,'
    'eCommerce Integrations,$22.50,Keyed,$0.00,$0.00,$0.00,"","",-$0.95,$21.55,H0gwRVidtViqrKOeFk52Ogi0gZTZY,'
    'F8r3g2ZWmeSIbkg0tdOH7gCjiFAZY,Visa,7685,,,,https://squareup.com/dashboard/sales/transactions/'
    'H0gwRVidtViqrKOeFk52Ogi0gZTZY/by-unit/L08F63EFNAXA2,"Custom Amount - Reservation",Payment,'
    '3ZMFS7QXV27W8YVCV8BY12E3434N,Pratt Fine Arts Center,"",2.9,$0.30,"","",Complete,$0.00',
    '2022-11-11,10:02:11,Pacific Time (US & Canada),$30.00,-$3.00,$0.00,$27.00,$0.00,$0.00,$0.00,$0.00,$27.00,'
    'Point of Sale,$27.00,Tap,$0.00,$0.00,$0.00,"","",-$0.93,$26.07,SQA1x,PA1,Visa,0000,Counter iPad,Sarah Kim,E1,,'
    '"Blue Dream 3.5g",Payment,,main,"",2.6,$0.10,"","",Complete,$0.00',
    '2022-11-11,13:00:00,Pacific Time (US & Canada),-$45.00,$0.00,$0.00,-$45.00,$0.00,$0.00,$0.00,$0.00,-$45.00,'
    'Point of Sale,-$45.00,Tap,$0.00,$0.00,$0.00,"","",$0.00,-$45.00,SQR9z,PR9,Visa,0000,Counter iPad,Sarah Kim,E1,,'
    '"Gel Pen x 1",Refund,,main,"",0,$0.00,"Returned goods","",Complete,$0.00',
    '2022-11-12,09:15:00,Pacific Time (US & Canada),$10.00,$0.00,$0.00,$10.00,$0.00,$0.00,$0.00,$0.00,$10.00,'
    'Point of Sale,$10.00,Tap,$0.00,$0.00,$0.00,"","",-$0.36,$9.64,SQB2y,PB2,Visa,0000,Counter iPad,New Hire,E77,,'
    '"Pre-roll",Payment,,main,"",2.6,$0.10,"","",Complete,$0.00',
]


async def test_a_square_transactions_export_refuses_negative_sales_and_flags_unknowns(
    store: tuple[Flow, Pos], tmp_path: Path
) -> None:
    flow, _ = store
    path = tmp_path / "transactions-2022-11-10-2022-11-13.csv"
    path.write_text("\n".join([SQUARE_HEADER, *SQUARE_ROWS]) + "\n", encoding="utf-8")
    report = await StoreImporter(flow.app.db, flow.app.people, flow.clock.now).run(
        "transactions", path, ImportOptions(progress=False, timezone=UTC, default_store="main"))
    assert report.read == 4 and report.written == 3
    [(line, reason)] = report.skipped
    assert line == 4 and "negative" in reason and "refunded" in reason  # the refund row, named by its line
    text = report.summary()
    assert "'Pratt Fine Arts Center' ×1" in text and "kept without a store" in text
    assert "1 transactions name a budtender id that is not imported" in text
    assert await codes(flow) == {"main"}  # no store called "Pratt Fine Arts Center"
    sales = services(flow.app).sales
    pratt, counter, hire = [await sales.get(t) for t in ("H0gwRVidtViqrKOeFk52Ogi0gZTZY", "SQA1x", "SQB2y")]
    assert pratt is not None and pratt.store_id is None and pratt.total == Decimal("21.55")
    assert counter is not None and counter.store_id == services(flow.app).store_ids["main"]
    assert counter.budtender_person_id is not None
    assert hire is not None and hire.budtender_person_id is None
    assert await sales.get("SQR9z") is None


async def test_import_with_an_unknown_store_option_is_an_operator_mistake(store: tuple[Flow, Pos],
                                                                          tmp_path: Path) -> None:
    import argparse

    from bot.errors import UserError

    flow, _ = store
    path = tmp_path / "c.csv"
    path.write_text("Customer ID,First Name\nC5,Eve\n")
    args = argparse.Namespace(map=[], timezone=None, store="nowhere", dry_run=False, no_progress=True,
                              house_brand=[], report=None, file=path, import_kind="customers")
    from coaching.sources.imports import import_kinds

    with pytest.raises(UserError, match="unknown store 'nowhere'"):
        await import_kinds(flow.app)["customers"].run(flow.app, args)
    assert await services(flow.app).customers.by_external_id("C5") is None
    assert json.dumps(sorted(await codes(flow))) == '["main"]'
