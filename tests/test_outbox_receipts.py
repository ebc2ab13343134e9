"""Receipts and delivery reports in the outbox, for any channel, with no timer (fake clock never moved).

`Pager` is a provider written only against the channel contract (`channels.base`): it takes a
message in parts, names each part as it takes it (`add_accept_listener`, see `listen_accepted`),
and its reports can come back before `send()` returns, in either order with the acceptance. The
outbox must match every report at once, keep one that matches nothing, and never let a report
settle a message whose send has not finished. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.model import Address, DeliveryReport, Outbound, OutboundStatus
from bot.plugins import Plugin
from bot.testing import Flow
from channels.base import (
    AcceptHandler,
    ChannelPolicy,
    DeliveryHandler,
    PermanentSendError,
    SendResult,
    listen_accepted,
)
from storage.outbox import OutboxRepo

TO = Address("pager", "7001")


class Pager:
    """A provider that splits on `|`, answers each part with an id, and reports when told to."""

    name = "pager"

    def __init__(self, *, accepts: bool = True) -> None:
        self.policy = ChannelPolicy("pager")
        self.accepts = accepts
        """Names parts as they go; False: only in `SendResult`, like an adapter without the method."""
        self.listeners: list[AcceptHandler] = []
        self.on_delivery: DeliveryHandler | None = None
        self.report_first = False
        """Report each part before naming it (the report overtakes even the acceptance)."""
        self.reports: dict[int, bool] = {}
        """Part number → delivered?, reported while the send is under way."""
        self.fail_at: int | None = None
        self.seen: list[tuple[str, OutboundStatus, list[OutboundStatus]]] = []
        """(part id, message status, part statuses) just after each part's report, mid-send."""
        self.repo: OutboxRepo | None = None

    def add_accept_listener(self, callback: AcceptHandler) -> None:
        self.listeners.append(callback)

    async def start(self, on_inbound: Any, on_delivery: DeliveryHandler) -> None:
        self.on_delivery = on_delivery

    async def stop(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> SendResult:
        assert self.on_delivery is not None and self.repo is not None and outbound.id is not None
        ids = []
        for n, _text in enumerate(outbound.body.split("|"), 1):
            if n == self.fail_at:
                raise PermanentSendError("part refused")
            pid = f"{outbound.id}.{n}"
            report = DeliveryReport("pager", pid, self.reports.get(n, True), None if self.reports.get(n, True)
                                    else "absent subscriber")
            if self.report_first and n in self.reports:
                await self.on_delivery(report)
            for listener in self.listeners if self.accepts else []:
                await listener(outbound, pid)
            if not self.report_first and n in self.reports:
                await self.on_delivery(report)
            if n in self.reports:
                row = await self.repo.get(outbound.id)
                assert row is not None
                self.seen.append((pid, row.status, [s for _p, s, _r in await self.repo.receipts_of(outbound.id)]))
            ids.append(pid)
        return SendResult(ids)


@pytest.fixture
async def pager_flow(db_url: str) -> AsyncIterator[tuple[Flow, Pager]]:
    pager = Pager()

    def setup(app: Any) -> None:
        app.add_channel(pager)

    flow = await Flow.create(plugins=[Plugin("pager", setup)], database_url=db_url)
    pager.repo = OutboxRepo(flow.app.db)
    try:
        yield flow, pager
    finally:
        await flow.close()


async def test_the_outbox_takes_acceptances_from_channels_that_offer_them() -> None:
    told: list[AcceptHandler] = []

    class Offers:
        def add_accept_listener(self, cb: AcceptHandler) -> None:
            told.append(cb)

    async def record(_o: Outbound, _pid: str) -> None:
        return None

    assert listen_accepted(Offers(), record) and told == [record]
    assert not listen_accepted(object(), record)  # an adapter without it keeps working


async def test_a_report_before_send_returns_is_matched_at_once(pager_flow: tuple[Flow, Pager]) -> None:
    flow, pager = pager_flow
    start = flow.clock.now()
    pager.reports = {1: True}
    msg = await flow.app.send(TO, "Your order is ready", key="one")
    await flow.settle()
    assert pager.seen == [(f"{msg.id}.1", OutboundStatus.SENDING, [OutboundStatus.DELIVERED])]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.DELIVERED
    assert await pager.repo.kept() == []  # type: ignore[union-attr]
    assert flow.clock.now() == start


async def test_a_report_before_the_acceptance_is_kept_then_matched(pager_flow: tuple[Flow, Pager]) -> None:
    flow, pager = pager_flow
    start = flow.clock.now()
    pager.report_first = True
    pager.reports = {1: True}
    await flow.app.send(TO, "Your order is ready", key="first")
    await flow.settle()
    [(_pid, status, parts)] = pager.seen
    assert status is OutboundStatus.SENDING and parts == [OutboundStatus.DELIVERED]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.DELIVERED
    assert await pager.repo.kept() == []  # type: ignore[union-attr]
    assert flow.clock.now() == start


async def test_every_part_of_a_multipart_send_is_matched(pager_flow: tuple[Flow, Pager]) -> None:
    flow, pager = pager_flow
    pager.reports = {1: True, 2: True, 3: True}
    msg = await flow.app.send(TO, "one|two|three", key="three")
    await flow.settle()
    delivered = OutboundStatus.DELIVERED
    assert pager.seen == [  # the message stays `sending` while later parts are still to go
        (f"{msg.id}.1", OutboundStatus.SENDING, [delivered]),
        (f"{msg.id}.2", OutboundStatus.SENDING, [delivered, delivered]),
        (f"{msg.id}.3", OutboundStatus.SENDING, [delivered, delivered, delivered]),
    ]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.DELIVERED
    assert [p for p, _s, _r in await pager.repo.receipts_of(row.id)] == [  # type: ignore[union-attr, arg-type]
        f"{msg.id}.1", f"{msg.id}.2", f"{msg.id}.3"]  # each recorded once, though also in SendResult


async def test_a_part_reported_failed_mid_send_fails_the_message(pager_flow: tuple[Flow, Pager]) -> None:
    flow, pager = pager_flow
    pager.reports = {1: False}
    await flow.app.send(TO, "one|two", key="lost")
    await flow.settle()
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.FAILED and row.reason == "absent subscriber"
    await pager.on_delivery(DeliveryReport("pager", f"{row.id}.2", True))  # type: ignore[misc]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.FAILED  # a part that never arrived stays a failure


async def test_a_report_cannot_make_a_failed_send_delivered(pager_flow: tuple[Flow, Pager]) -> None:
    """Part 1 went out and is reported delivered; part 2 is refused: the message failed to send."""
    flow, pager = pager_flow
    pager.reports = {1: True}
    pager.fail_at = 2
    await flow.app.send(TO, "one|two", key="half")
    await flow.settle()
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.FAILED and row.reason == "part refused"
    await pager.on_delivery(DeliveryReport("pager", f"{row.id}.1", True))  # type: ignore[misc]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.FAILED and row.reason == "part refused"


async def test_a_report_for_an_unknown_id_is_logged_and_kept(
    pager_flow: tuple[Flow, Pager], caplog: pytest.LogCaptureFixture
) -> None:
    flow, pager = pager_flow
    caplog.set_level(logging.INFO)
    await flow.app.outbox.delivery(DeliveryReport("pager", "ghost-9", False, "unknown subscriber", address=TO))
    assert "delivery report for no known message kept channel=pager provider_id=ghost-9" in caplog.text
    [kept] = await pager.repo.kept()  # type: ignore[union-attr]
    assert (kept.provider_id, kept.address, kept.delivered, kept.reason) == ("ghost-9", "7001", False,
                                                                            "unknown subscriber")
    assert kept.received_at == flow.clock.now()
    assert await flow.outbox_rows() == []  # nothing invented


async def test_a_kept_report_older_than_the_message_is_not_applied_to_it(pager_flow: tuple[Flow, Pager]) -> None:
    """Provider ids come round again (an SMS reference every 256 messages): a report received before a
    message existed is not about it."""
    flow, pager = pager_flow
    pager.accepts = False
    await flow.app.outbox.delivery(DeliveryReport("pager", "1.1", False, "old news", address=TO))
    await flow.clock.advance(60)
    await flow.app.send(TO, "fresh", key="fresh")  # outbox id 1 → part id "1.1"
    await flow.settle()
    [row] = await flow.outbox_rows()
    assert row.id == 1 and row.status is OutboundStatus.SENT
    assert [k.provider_id for k in await pager.repo.kept()] == ["1.1"]  # type: ignore[union-attr]


async def test_a_kept_report_for_another_address_is_not_applied(pager_flow: tuple[Flow, Pager]) -> None:
    flow, pager = pager_flow
    pager.accepts = False
    await flow.app.outbox.delivery(DeliveryReport("pager", "1.1", True, address=Address("pager", "9999")))
    await flow.app.send(TO, "hello", key="hello")
    await flow.settle()
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.SENT


async def test_without_acceptances_the_ids_of_send_result_are_recorded(pager_flow: tuple[Flow, Pager]) -> None:
    """An adapter that does not name parts as they go keeps working: its ids are recorded when send returns,
    and a report that came before is applied then."""
    flow, pager = pager_flow
    pager.accepts = False
    pager.reports = {2: True}
    await flow.app.send(TO, "one|two", key="late")
    await flow.settle()
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.SENT  # part 2 known delivered, part 1 still waits for its report
    assert [s for _p, s, _r in await pager.repo.receipts_of(row.id)] == [  # type: ignore[union-attr, arg-type]
        OutboundStatus.SENT, OutboundStatus.DELIVERED]
    await pager.on_delivery(DeliveryReport("pager", f"{row.id}.1", True))  # type: ignore[misc]
    [row] = await flow.outbox_rows()
    assert row.status is OutboundStatus.DELIVERED
    assert await pager.repo.kept() == []  # type: ignore[union-attr]
