"""A full simulated shift: signed POS webhooks over HTTP, the fake clock, a restart at lunch.

Exactly the expected coaching messages, at the expected times, none twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.testing import Flow, migrated_sqlite
from coaching.pos import sign
from handlers.budtenders import coach_of
from handlers.store import services
from tests.test_budtenders_flow import SARAH, START, open_store, sarah_texts

SECRET = "whsec_day"


def at(hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return START.replace(hour=int(h), minute=int(m))


# (time, total, rewards sign-up)
ORDERS = [
    *[(f"10:{m}", "28.00", False) for m in ("10", "20", "30", "40", "50")],  # weak: nudge at the fifth
    *[(f"11:{m}", "28.00", False) for m in ("00", "10", "20", "30")],        # still weak: cooldown, no fresh window
    ("12:10", "90.00", True), ("12:20", "90.00", True), ("12:30", "90.00", True),  # target hit at 12:30
    ("13:20", "55.00", False), ("14:40", "61.00", False), ("15:15", "47.00", True),
]
EXPECTED = [
    ("10:50", "nudge"),
    ("12:00", "midshift"),
    ("12:30", "celebrate"),
    ("14:00", "midshift"),
    ("16:00", "midshift"),
    ("18:00", "summary"),
]


async def post(http: aiohttp.ClientSession, port: int, flow: Flow, n: int, when: datetime, total: str,
               signup: bool) -> None:
    data = {"id": f"D{n}", "store": "main", "budtender_id": "E1", "occurred_at": when.isoformat(), "total": total,
            "rewards_signup": signup, "items": [{"sku": "P1", "name": "OG", "category": "flower", "quantity": 1,
                                                 "unit_price": total}]}
    body = json.dumps({"id": f"evt-D{n}", "type": "order.created", "data": data}).encode()
    headers = {"X-Huddle-Signature": sign(SECRET, body, flow.clock.now().timestamp()),
               "Content-Type": "application/json"}
    async with http.post(f"http://127.0.0.1:{port}/webhooks/pos", data=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    await services(flow.app).ingest.idle()
    await flow.settle()


async def test_a_full_shift_with_a_restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HUDDLE_POS_WEBHOOK_SECRET", SECRET)
    url = await migrated_sqlite(tmp_path)
    flow, _, _ = await open_store(url)
    port = await flow.app.http.start("127.0.0.1", 0)
    http = aiohttp.ClientSession()
    restarted = False
    try:
        due = list(enumerate(ORDERS, 1))
        t = START
        while t < at("18:10"):
            t += timedelta(minutes=5)
            await flow.clock.set(t)
            while due and at(due[0][1][0]) <= t:
                n, (hhmm, total, signup) = due.pop(0)
                await post(http, port, flow, n, at(hhmm), total, signup)
            await flow.advance(0)
            if not restarted and t == at("13:05"):
                # the process stops at lunch and starts again; the POS re-sends its last event
                await flow.app.http.stop()
                await flow.close()
                flow, _, _ = await open_store(url, t, fresh=False)
                port = await flow.app.http.start("127.0.0.1", 0)
                await post(http, port, flow, 12, at("12:30"), "90.00", True)
                restarted = True
        sent = [(m["sent_at"].astimezone(UTC).strftime("%H:%M"), m["kind"])
                for m in await coach_of(flow.app).repo.messages()]
        assert sent == EXPECTED
        outbox = [m for m in await flow.outbox_rows() if m.address.id == SARAH]
        assert len(outbox) == len(EXPECTED) == len({m.idempotency_key for m in outbox})
        assert all(len(m.body) <= 160 for m in outbox)
        assert len(sarah_texts(flow)) == 3  # this process sent the 14:00, 16:00 and 18:00 ones, nothing again
    finally:
        await http.close()
        await flow.app.http.stop()
        await flow.close()
