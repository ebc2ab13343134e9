"""A journey waiting on a durable timer survives `kill -9`: Huddle started as a user starts it
(`python main.py run` on SQLite, the store's modem a fake SIM7600 on a pty), a signed POS webhook
over HTTP, the process killed while the run waits, started again — the customer gets one text."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from channels.sms.simulator import SimulatedModem
from coaching.pos import sign
from storage.db import Database
from storage.events import ORDER_CREATED, EventLog
from storage.outbox import outbox
from storage.playbooks import PlaybookRepo, playbook_runs
from tests.scaleout_support import eventually_async

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_restart"
PHONE = "+16195550101"
BODY = "Hello Ann, thanks for coming by."
CONFIG = """
[[stores]]
code = "main"
name = "Main St"
timezone = "America/Los_Angeles"

[[playbooks]]
name = "after-visit"
trigger = "order.created"
holdout = 0.0
marketing = false
[[playbooks.steps]]
wait = "12s"
[[playbooks.steps]]
send = "Hello {{ customer.first_name }}, thanks for coming by."
"""


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedModem]:
    modem = SimulatedModem(seed=14)
    await modem.start()
    try:
        yield modem
    finally:
        await modem.stop()


def _env(tmp: Path, sim: SimulatedModem) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HUDDLE_DATABASE_URL": str(tmp / "huddle.db"),
            "HUDDLE_SMS_PORT": sim.port, "HUDDLE_DEMO": "false", "HUDDLE_CONSOLE": "false",
            "HUDDLE_HTTP_PORT": "0", "HUDDLE_POS_WEBHOOK_SECRET": SECRET, "HUDDLE_PLAYBOOKS_POLL": "0.2",
            "HUDDLE_OUTBOX_POLL_INTERVAL": "0.5", "HUDDLE_LOG_LEVEL": "INFO",
            # no quiet hours (start == end): the text may go whatever the real time of day
            "HUDDLE_QUIET_HOURS_START": "08:00", "HUDDLE_QUIET_HOURS_END": "08:00"}


async def _start(tmp: Path, sim: SimulatedModem, name: str) -> tuple[asyncio.subprocess.Process, Path, int]:
    log = tmp / f"{name}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    child = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "main.py"), "run", cwd=tmp,
                                                 env=_env(tmp, sim), stdin=asyncio.subprocess.DEVNULL,
                                                 stdout=fd, stderr=fd)
    os.close(fd)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        port = re.search(r"http listening host=\S+ port=(\d+)", text)
        if "huddle running" in text and port:
            return child, log, int(port.group(1))
        if child.returncode is not None:
            raise AssertionError(f"{name} exited {child.returncode}:\n{text[-3000:]}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not start:\n{log.read_text(errors='replace')[-3000:]}")


async def _post_order(port: int) -> None:
    now = datetime.now(UTC)
    body = json.dumps({"id": "evt-restart-1", "type": "order.created", "created_at": now.isoformat(),
                       "data": {"id": "T-R1", "store": "main", "customer_id": "C1", "customer_phone": PHONE,
                                "occurred_at": now.isoformat(), "total": "42.00",
                                "items": [{"sku": "P1", "name": "OG 3.5g", "category": "flower", "quantity": 1,
                                           "unit_price": "42.00"}]}}).encode()
    headers = {"X-Huddle-Signature": sign(SECRET, body, now.timestamp()), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/webhooks/pos", data=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()


async def test_kill_9_during_a_wait_then_one_text_after_restart(sim: SimulatedModem, tmp_path: Path) -> None:
    (tmp_path / "huddle.toml").write_text(CONFIG)
    (tmp_path / "customers.csv").write_text("Customer ID,First Name,Last Name,Phone,Points\nC1,Ann,Lee,"
                                            "619-555-0101,0\n")
    for command in (["db", "upgrade"], ["import", "customers", "customers.csv"]):
        child = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "main.py"), *command, cwd=tmp_path,
                                                     env=_env(tmp_path, sim), stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.STDOUT)
        out = (await asyncio.wait_for(child.communicate(), 120))[0].decode()
        assert child.returncode == 0, out
    texts: list[tuple[str, str]] = []
    sim.on_text.append(lambda number, text: texts.append((number, text)))
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'huddle.db'}", durable=False)
    children: list[asyncio.subprocess.Process] = []

    async def runs() -> list[tuple[str, int, datetime | None]]:
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(playbook_runs.c.status, playbook_runs.c.step,
                                                 playbook_runs.c.wake_at))).all()
        return [(r.status, r.step, r.wake_at) for r in rows]

    try:
        first, _, port = await _start(tmp_path, sim, "first")
        children.append(first)
        await _post_order(port)

        async def waiting() -> bool:
            return [(s, step) for s, step, _ in await runs()] == [("waiting", 1)]

        await eventually_async(waiting, timeout=60, what="the run to wait on its timer")
        first.send_signal(signal.SIGKILL)  # while the journey waits: only the database knows of it
        assert await first.wait() == -signal.SIGKILL
        [(_, _, wake_at)] = await runs()
        assert wake_at is not None
        assert texts == [], "sent before the timer was due"

        second, log2, _ = await _start(tmp_path, sim, "second")
        children.append(second)

        async def sent() -> bool:
            return bool(texts) and [s for s, _, _ in await runs()] == ["done"]

        await eventually_async(sent, timeout=90, what="the text after the restart")
        second.send_signal(signal.SIGTERM)  # a clean stop: anything still queued would show as a second row
        assert await asyncio.wait_for(second.wait(), 60) == 0, log2.read_text()[-3000:]
        assert texts == [(PHONE, BODY)]

        repo = PlaybookRepo(db)
        [(run, steps)] = await repo.runs()
        assert (run.playbook, run.status, run.held_out) == ("after-visit", "done", False)
        assert [(s.step, s.kind, s.result, s.attempts) for s in steps] == [(0, "wait", "waiting", 1),
                                                                            (1, "send", "sent", 1)]
        assert steps[1].detail == BODY and steps[1].outbox_id is not None
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(outbox).where(outbox.c.address == PHONE))).all()
        [row] = rows
        assert (row.id, row.body, row.status in ("sent", "delivered")) == (steps[1].outbox_id, BODY, True)
        assert row.sent_at >= wake_at  # not before the timer, though the process died during it
        event = await EventLog(db).get(run.event_id)
        assert event is not None and (event.type, event.source_id) == (ORDER_CREATED, "T-R1")
        assert await EventLog(db).count(ORDER_CREATED) == 1
    finally:
        for child in children:
            if child.returncode is None:
                child.send_signal(signal.SIGKILL)
                await child.wait()
        await db.close()
