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
from bot.testing import migrated_sqlite
from channels.sms.modem import ModemChannel, ModemConfig
from channels.sms.simulator import SimulatedModem, Transcript
from storage.sms import SmsRepo
from tests.flows import ROLES_PLUGIN, Flow

FAST = {
    "command_timeout": 0.5,
    "cmgs_timeout": 0.5,
    "reconnect_min": 0.02,
    "reconnect_max": 0.2,
    "sms_done_timeout": 1.0,
    "ready_wait": 2.0,
}


class Recorder:
    """Records every text the router takes in from the modem, and answers free text (optionally).

    Recording happens where the router starts handling a stored message, not in a handler, so a
    text from a machine sender (an alphanumeric name, a short code), which is stored but never
    given to a handler, is recorded too: these tests are about what the modem stack delivers.
    """

    def __init__(self, answer: Callable[[str], str | None] | None = None) -> None:
        self.messages: list[Inbound] = []
        self.answer = answer
        self.router = Router("sms-test")

        @self.router.message()
        async def reply(ctx: Context) -> str | None:
            return self.answer(ctx.inbound.text) if self.answer else None

    def watch(self, app: App) -> None:
        handle = app.dispatcher.handle

        async def recording(message: Inbound) -> None:
            self.messages.append(message)
            await handle(message)

        app.dispatcher.handle = recording  # type: ignore[method-assign]

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
    app.load_plugins([ROLES_PLUGIN])  # every audience declared, so a new number becomes a lead as in the product
    if recorder is not None:
        app.include_router(recorder.router)
        recorder.watch(app)
    channel = ModemChannel(ModemConfig(port=sim.port, **{**FAST, **config}), SmsRepo(app.db), clock, simulator=sim)
    app.add_channel(channel)
    await app.start(run_scheduler=False)
    for _ in range(500):  # let the first sweep (started when the modem became ready) finish
        if not channel.sweeping:
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


def transcript(name: str) -> Transcript:
    """A recorded transcript from tests/transcripts/sms, by file name."""
    return Transcript(TRANSCRIPTS / name)


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
