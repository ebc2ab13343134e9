"""Gateways and workers started as a user starts them (`python main.py gateway|worker`), against a
throwaway PostgreSQL database, with a fake SIM7600 on a pty as the store's modem; and what the
database and the phones say afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from channels.sms.simulator import SimulatedModem
from storage.db import Database
from storage.inbox import inbound
from storage.outbox import outbox
from storage.processes import processes

ROOT = Path(__file__).resolve().parent.parent
LEASE = 3.0
HEARTBEAT = 0.5
REPLY = "our store hasn't set its opening hours here yet."


def number(i: int) -> str:
    return f"+1555{100_0000 + i:07d}"


@dataclass
class Proc:
    role: str
    name: str
    child: asyncio.subprocess.Process
    log: Path
    started: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def kill_9(self) -> None:
        self.child.send_signal(signal.SIGKILL)
        await self.child.wait()

    async def stop(self) -> int:
        if self.child.returncode is None:
            self.child.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.child.wait(), 30)


class Cluster:
    def __init__(self, url: str, tmp: Path, sim: SimulatedModem) -> None:
        self.url = url
        self.tmp = tmp
        self.sim = sim
        self.procs: list[Proc] = []
        self.db = Database(url, durable=False)
        self.texts: list[tuple[float, str, str]] = []
        sim.on_text.append(lambda n, t: self.texts.append((time.monotonic(), n, t)))

    def env(self, url: str | None = None, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "HUDDLE_DATABASE_URL": url or self.url,
                "HUDDLE_SMS_PORT": self.sim.port, "HUDDLE_DEMO": "false", "HUDDLE_CONSOLE": "false",
                "HUDDLE_HTTP_ENABLED": "false", "HUDDLE_PROCESS_LEASE": str(LEASE),
                "HUDDLE_HEARTBEAT_INTERVAL": str(HEARTBEAT), "HUDDLE_OUTBOX_POLL_INTERVAL": "1",
                "HUDDLE_SMS_SWEEP_INTERVAL": "2", "HUDDLE_LOG_LEVEL": "INFO", **extra}

    async def start(self, role: str, name: str, *, url: str | None = None, wait: bool = True,
                    **extra: str) -> Proc:
        log = self.tmp / f"{name}.log"
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "main.py", role, cwd=ROOT, env=self.env(url, **extra),
            stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd)
        os.close(fd)
        proc = Proc(role, name, child, log)
        self.procs.append(proc)
        if wait:
            await running(proc)
        return proc

    def deliver(self, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            self.sim.deliver(number(i), f"hi, what are your hours? #{i}")

    async def counts(self) -> tuple[int, int, int]:
        """(inbound stored, inbound handled, outbound sent or delivered)."""
        async with self.db.read() as conn:
            stored = (await conn.execute(sa.select(sa.func.count()).select_from(inbound))).scalar_one()
            handled = (await conn.execute(sa.select(sa.func.count()).where(inbound.c.status == "handled"))).scalar_one()
            sent = (await conn.execute(sa.select(sa.func.count()).where(
                outbox.c.status.in_(("sent", "delivered"))))).scalar_one()
        return int(stored), int(handled), int(sent)

    async def all_done(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.counts() == (n, n, n) and len({t[1] for t in self.texts}) >= n:
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"not done after {timeout}s: stored/handled/sent={await self.counts()}, "
                             f"phones answered={len({t[1] for t in self.texts})}\n" + self.logs_tail())

    def logs_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.text().splitlines()[-15:]) for p in self.procs)

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.db.read() as conn:
            return list((await conn.execute(sa.select(table).where(*where).order_by(table.c.id))).all())

    async def process_ids(self) -> dict[str, str]:
        """role+pid → process id, from the processes table."""
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(processes))).all()
        return {f"{r.role}:{r.pid}": r.id for r in rows}

    async def last_heartbeat(self, process_id: str) -> Any:
        async with self.db.read() as conn:
            return (await conn.execute(sa.select(processes.c.heartbeat_at).where(
                processes.c.id == process_id))).scalar_one()

    async def check_once(self, n: int) -> dict[str, Any]:
        """Every text stored once and handled; one reply each, received by its phone once, or more
        often only when its row is marked possibly repeated. Returns figures for the report."""
        ins = await self.rows(inbound)
        assert len(ins) == n and {r.address for r in ins} == {number(i) for i in range(n)}
        assert all(r.status == "handled" for r in ins), Counter(r.status for r in ins)
        outs = await self.rows(outbox)
        assert len(outs) == n and all(r.status in ("sent", "delivered") for r in outs)
        assert Counter(r.idempotency_key for r in outs) == Counter(f"in:{r.id}:1" for r in ins)
        got = Counter(t[1] for t in self.texts if t[2] == REPLY)
        resent = {r.address for r in outs if r.resent}
        assert set(got) == {number(i) for i in range(n)}
        twice = {a for a, c in got.items() if c > 1}
        assert twice <= resent, f"sent twice without the mark: {sorted(twice - resent)}"
        return {"resent": len(resent), "twice": len(twice), "handled_by": Counter(r.claimed_by for r in ins)}

    async def close(self) -> None:
        for p in self.procs:
            if p.child.returncode is None:
                p.child.send_signal(signal.SIGKILL)
                await p.child.wait()
        await self.db.close()


async def running(proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "huddle running" in proc.text():
            return
        if proc.child.returncode is not None:
            raise AssertionError(f"{proc.name} exited {proc.child.returncode}:\n{proc.text()[-3000:]}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"{proc.name} did not start:\n{proc.text()[-3000:]}")


async def eventually_async(check: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
