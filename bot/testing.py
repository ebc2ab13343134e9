"""A harness for handler authors: a fake channel and a conversation flow on a fake clock.

    flow = await Flow.create(plugins=["handlers.sales_managers"])
    ann = await flow.person("Ann", {Role.SALES_MANAGER}, telegram="42")
    replies = await flow.send(ann, "stale 5")
    assert "No stale deals" in replies[-1]
    await flow.close()

`send` stores the message through the real dispatcher, runs the handler, drains the real outbox
into a `FakeChannel`, and returns the bodies that reached the sender. Time moves only with
`await flow.advance(seconds)`, which also fires due scheduled jobs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import App
from bot.clock import FakeClock
from bot.config_file import ConfigFile
from bot.model import Address, DeliveryReport, Inbound, InboundFile, Outbound, OutboundStatus, Person, Role
from bot.settings import CoreSettings
from channels.base import Capabilities, Markup, Pacing, PermanentSendError, RetryableSendError, SendResult
from storage.db import Database
from storage.outbox import OutboxRepo

_ids = itertools.count(1)


@dataclass
class FakeChannel:
    """Records what it is asked to send; `fail_next` scripts provider errors."""

    name: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    pacing: Pacing = field(default_factory=lambda: Pacing(concurrency=8))
    sent: list[Outbound] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    calls: int = 0
    delivered: bool = False
    on_inbound: Any = None
    on_delivery: Any = None

    async def start(self, on_inbound: Any, on_delivery: Any) -> None:
        self.on_inbound = on_inbound
        self.on_delivery = on_delivery

    async def stop(self) -> None:
        return None

    async def send(self, outbound: Outbound) -> SendResult:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(outbound)
        return SendResult([f"{self.name}-{next(_ids)}"], delivered=self.delivered)

    def fail_next(self, *errors: Exception) -> None:
        self.errors.extend(errors)

    def bodies(self, address: Address | None = None) -> list[str]:
        return [m.body for m in self.sent if address is None or m.address == address]

    async def report(self, provider_id: str, delivered: bool = True, reason: str | None = None) -> None:
        await self.on_delivery(DeliveryReport(self.name, provider_id, delivered, reason))


DEFAULT_CHANNELS: dict[str, Capabilities] = {
    "sms": Capabilities(max_length=1530, markup=Markup.PLAIN),
    "slack": Capabilities(max_length=40000, markup=Markup.SLACK_MRKDWN, buttons=True, files=True),
    "telegram": Capabilities(max_length=4096, markup=Markup.TELEGRAM_HTML, buttons=True),
    "console": Capabilities(markup=Markup.PLAIN),
}

_template_cache: dict[str, Path] = {}


async def migrated_sqlite(directory: Path) -> str:
    """A fresh SQLite file with every migration applied (copied from a per-process template)."""
    key = "template"
    if key not in _template_cache:
        template_dir = Path(tempfile.mkdtemp(prefix="huddle-template-"))
        path = template_dir / "template.db"
        db = Database(str(path), durable=False, group_commit=False)
        await db.upgrade()
        await db.close()
        _template_cache[key] = path
    target = directory / f"huddle-{next(_ids)}.db"
    shutil.copyfile(_template_cache[key], target)
    return str(target)


class Flow:
    def __init__(self, app: App, clock: FakeClock, channels: dict[str, FakeChannel], tmp: Path | None) -> None:
        self.app = app
        self.clock = clock
        self.channels = channels
        self._tmp = tmp

    @classmethod
    async def create(
        cls,
        *,
        plugins: Iterable[str] = (),
        channels: dict[str, Capabilities] | None = None,
        start: datetime | None = None,
        database_url: str | None = None,
        config: dict[str, Any] | None = None,
        demo: bool = False,
        **settings: Any,
    ) -> Flow:
        for key in ("telegram_rate", "telegram_per_chat_rate", "slack_per_channel_rate"):
            settings.setdefault(key, None)  # pacing is tested on its own; flows should not wait on it
        clock = FakeClock(start)
        tmp = None
        if database_url is None:
            tmp = Path(tempfile.mkdtemp(prefix="huddle-flow-"))
            database_url = await migrated_sqlite(tmp)
        core = CoreSettings(
            database_url=database_url,
            durable_commits=False,
            demo=demo,
            console=False,
            http_enabled=False,
            _env_file=None,  # type: ignore[call-arg]
            **settings,
        )
        app = App(core, clock=clock, config=ConfigFile(config or {}))
        app.load_plugins(plugins)
        fakes = {}
        for name, caps in (channels or DEFAULT_CHANNELS).items():
            if name in app.channels:
                continue
            fakes[name] = FakeChannel(name, caps)
            app.add_channel(fakes[name])
        flow = cls(app, clock, fakes, tmp)
        await app.start(run_scheduler=False)
        return flow

    async def person(
        self,
        name: str,
        roles: Iterable[Role] = (),
        *,
        sms: str | None = None,
        slack: str | None = None,
        telegram: str | None = None,
        console: str | None = None,
        timezone: str = "UTC",
        locale: str = "en",
        **attributes: Any,
    ) -> Person:
        addrs = [
            Address(c, v)
            for c, v in (("sms", sms), ("slack", slack), ("telegram", telegram), ("console", console))
            if v
        ]
        person = Person(None, name, frozenset(roles), addrs, timezone, locale, attributes=attributes)
        return await self.app.people.add(person, self.clock.now())

    def address_of(self, who: Person | Address, channel: str | None = None) -> Address:
        if isinstance(who, Address):
            return who
        if channel:
            found = who.address_on(channel)
            if found is None:
                raise ValueError(f"{who.name} has no {channel} address")
            return found
        if not who.addresses:
            raise ValueError(f"{who.name} has no address")
        return who.addresses[0]

    async def receive(
        self,
        who: Person | Address,
        text: str,
        *,
        channel: str | None = None,
        provider_id: str | None = None,
        files: list[InboundFile] | None = None,
        callback: str | None = None,
        thread: str | None = None,
        display_name: str | None = None,
    ) -> int | None:
        """Deliver an inbound message as its channel would; returns the stored row id."""
        address = self.address_of(who, channel)
        message = Inbound(
            address=address,
            text=text,
            provider_id=provider_id or f"p-{next(_ids)}",
            received_at=self.clock.now(),
            files=files or [],
            thread=thread,
            callback_data=callback,
            display_name=display_name,
        )
        return await self.app.dispatcher.ingest(message)

    async def send(self, who: Person | Address, text: str, **kwargs: Any) -> list[str]:
        """A message in; the bodies that went back to the sender's address, in order."""
        address = self.address_of(who, kwargs.get("channel"))
        fake = self.channels.get(address.channel)
        before = len(fake.sent) if fake else 0
        await self.receive(who, text, **kwargs)
        await self.settle()
        if fake is None:
            return []
        return [m.body for m in fake.sent[before:] if m.address == address]

    async def settle(self) -> None:
        """Let every handler finish and the outbox send all that is due."""
        for _ in range(3):
            await self.app.dispatcher.idle()
            await self.app.outbox.idle()

    async def advance(self, seconds: float | timedelta) -> None:
        """Move the fake clock, fire due jobs, and settle."""
        await self.clock.advance(seconds)
        await self.app.scheduler.run_due()
        await self.settle()

    def sent_to(self, who: Person | Address, channel: str | None = None) -> list[str]:
        address = self.address_of(who, channel)
        fake = self.channels.get(address.channel)
        return fake.bodies(address) if fake else []

    async def outbox_rows(self, status: OutboundStatus | None = None) -> list[Outbound]:
        return await OutboxRepo(self.app.db).find(status=status)

    async def close(self) -> None:
        await self.app.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def test_database_url() -> str | None:
    """The PostgreSQL URL the storage tests also run against, when set."""
    return os.environ.get("HUDDLE_TEST_DATABASE_URL") or None


__all__ = [
    "FakeChannel",
    "Flow",
    "PermanentSendError",
    "RetryableSendError",
    "migrated_sqlite",
    "test_database_url",
]
