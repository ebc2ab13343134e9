"""Helpers for the SMS tests: a Flow whose "sms" channel is the real modem stack on a simulator pty."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import App
from bot.clock import FakeClock
from bot.config_file import ConfigFile
from bot.context import Context
from bot.model import Inbound
from bot.router import Router
from bot.settings import CoreSettings
from bot.testing import Flow, migrated_sqlite
from channels.sms.modem import ModemChannel, ModemConfig
from channels.sms.simulator import SimulatedModem
from storage.sms import SmsRepo

FAST = {
    "command_timeout": 0.5,
    "cmgs_timeout": 0.5,
    "reconnect_min": 0.02,
    "reconnect_max": 0.2,
    "sms_done_timeout": 1.0,
    "ready_wait": 2.0,
}


class Recorder:
    """A free-text handler that records what reached it (and optionally answers)."""

    def __init__(self, answer: Callable[[str], str | None] | None = None) -> None:
        self.messages: list[Inbound] = []
        self.answer = answer
        self.router = Router("sms-test")

        @self.router.message()
        async def record(ctx: Context) -> str | None:
            self.messages.append(ctx.inbound)
            return self.answer(ctx.inbound.text) if self.answer else None

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


async def sms_flow(
    sim: SimulatedModem, recorder: Recorder | None = None, *, database_url: str | None = None,
    clock: FakeClock | None = None, **config: Any,
) -> tuple[Flow, ModemChannel]:
    clock = clock or FakeClock()
    tmp = None
    if database_url is None:
        tmp = Path(tempfile.mkdtemp(prefix="huddle-sms-"))
        database_url = await migrated_sqlite(tmp)
    core = CoreSettings(
        database_url=database_url, durable_commits=False, demo=False, console=False, http_enabled=False,
        outbox_backoff_base=1.0, outbox_backoff_max=5.0, quiet_hours_roles=[],
        _env_file=None,  # type: ignore[call-arg]
    )
    app = App(core, clock=clock, config=ConfigFile({}))
    if recorder is not None:
        app.include_router(recorder.router)
    channel = ModemChannel(ModemConfig(port=sim.port, **{**FAST, **config}), SmsRepo(app.db), clock, simulator=sim)
    app.add_channel(channel)
    await app.start(run_scheduler=False)
    for _ in range(500):  # let the first sweep (started when the modem became ready) finish
        if not channel._sweeps:
            break
        await asyncio.sleep(0.01)
    return Flow(app, clock, {}, tmp), channel


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait (for real I/O on the pty) until `predicate()` is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# -- recorded transcripts (tests/transcripts/sms) -----------------------------------------------------

TRANSCRIPTS = Path(__file__).parent / "transcripts" / "sms"


class Transcript:
    """A recorded modem exchange: the command each block answers, and the lines the modem printed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source: list[str] = []
        self.blocks: list[tuple[str, list[str]]] = []
        for raw in (TRANSCRIPTS / name).read_text().splitlines():
            if raw.startswith("#"):
                self.source.append(raw[1:].strip())
            elif raw.startswith("> "):
                self.blocks.append((raw[2:].strip(), []))
            elif raw.strip() and self.blocks:
                self.blocks[-1][1].append("" if raw.strip() == "<blank>" else raw.rstrip())

    def answer(self, command: str) -> list[str]:
        return next(lines for cmd, lines in self.blocks if cmd == command)

    def script(self, sim: SimulatedModem, *commands: str) -> None:
        """Let the simulator answer these commands (all blocks if none named) byte for byte."""
        for cmd, lines in self.blocks:
            if not commands or cmd in commands:
                sim.script[cmd.upper()] = "".join(f"\r\n{ln}" if ln else "\r\n" for ln in lines) + "\r\n"

    def load_listing(self, sim: SimulatedModem, announce: bool = False) -> list[int]:
        return sim.load_listing(self.answer("AT+CMGL=4"), announce=announce)

    def store_cmgr(self, sim: SimulatedModem, command: str) -> int | None:
        """Store the entry a recorded `+CMGR` answer shows, noise and header as printed; announce it."""
        lines = [ln for ln in self.answer(command) if not ln.upper().startswith("AT") and ln != "OK"]
        i = next(n for n, ln in enumerate(lines) if ln.startswith("+CMGR:"))
        header, pdu_hex, noise = lines[i], lines[i + 1], lines[i + 2 :]
        length = header.rsplit(",", 1)[-1].strip()
        return sim.deliver_pdu(pdu_hex, length=int(length) if length.isdigit() else length, before=lines[:i],
                               noise=noise, cmgr_header=header)


async def inbox_rows(flow: Flow | str) -> list[Any]:
    """Every stored inbound SMS (address, text, provider_id, status), oldest first; a flow or a db URL."""
    import sqlalchemy as sa

    from storage.db import Database
    from storage.inbox import inbound

    db = flow.app.db if isinstance(flow, Flow) else Database(flow, durable=False)
    try:
        return await _inbox_rows(db, sa, inbound)
    finally:
        if not isinstance(flow, Flow):
            await db.close()


async def _inbox_rows(db: Any, sa: Any, inbound: Any) -> list[Any]:
    async with db.read() as conn:
        query = sa.select(inbound.c.address, inbound.c.text, inbound.c.provider_id, inbound.c.status).where(
            inbound.c.channel == "sms").order_by(inbound.c.id)
        return list((await conn.execute(query)).all())
