"""Stopping while SMS are queued for the modem: the one the modem is sending is waited for (its
answer says whether it left), the ones still waiting their turn go back to the queue untouched —
neither sent after the stop began nor flagged "possibly repeated" at the next start."""

from __future__ import annotations

import time

from bot.model import Address, OutboundKind, OutboundStatus
from channels.sms.simulator import SimulatedModem
from storage.db import Database
from storage.outbox import OutboxRepo
from tests.sms_support import eventually, sms_flow


async def test_a_stop_waits_for_the_send_in_flight_and_gives_the_waiting_ones_back() -> None:
    sim = SimulatedModem(seed=11, cmgs_delay=(1.0, 1.0))  # a real modem answers CMGS in seconds
    await sim.start()
    flow, _channel = await sms_flow(sim, cmgs_timeout=10.0)
    url = flow.app.settings.database_url
    try:
        for i in range(4):
            await flow.app.send(Address("sms", f"+1555222000{i}"), f"reply {i}", kind=OutboundKind.REPLY,
                                key=f"q{i}")
        await eventually(lambda: sim.cmgs_count() >= 1, what="the first CMGS under way")
        started = time.monotonic()
        await flow.app.stop()
        took = time.monotonic() - started
    finally:
        await sim.stop()
    assert sim.cmgs_count() == 1 and [p.text for p in sim.sent] == ["reply 0"]
    assert took < 2.5, f"the stop took {took:.1f} s: it waited for sends that had not started"
    db = Database(url, durable=False)
    try:
        rows = {r.body: r for r in await OutboxRepo(db).find()}
    finally:
        await db.close()
    assert rows["reply 0"].status in (OutboundStatus.SENT, OutboundStatus.DELIVERED)
    for body in ("reply 1", "reply 2", "reply 3"):
        row = rows[body]
        assert (row.status, row.attempts, row.resent) == (OutboundStatus.QUEUED, 0, False), (body, row, rows)


async def test_the_waiting_ones_go_out_after_a_restart_once_each() -> None:
    sim = SimulatedModem(seed=12, cmgs_delay=(0.5, 0.5))
    await sim.start()
    try:
        flow, _channel = await sms_flow(sim, cmgs_timeout=10.0)
        url = flow.app.settings.database_url
        for i in range(3):
            await flow.app.send(Address("sms", f"+1555333000{i}"), f"note {i}", kind=OutboundKind.REPLY, key=f"n{i}")
        await eventually(lambda: sim.cmgs_count() >= 1, what="sending under way")
        await flow.app.stop()
        again, _ = await sms_flow(sim, database_url=url, cmgs_timeout=10.0)
        try:
            await eventually(lambda: len(sim.sent) == 3, timeout=10, what="the rest sent after the restart")
            assert sorted(p.text for p in sim.sent) == ["note 0", "note 1", "note 2"]
            assert not any(r.resent for r in await again.outbox_rows())
        finally:
            await again.close()
    finally:
        await sim.stop()
