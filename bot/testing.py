"""A harness for plugin authors: fake channels and a conversation flow on a fake clock.

    flow = await Flow.create(plugins=["my_channel", "my_audience"])
    ann = await flow.person("Ann", {"manager"}, chat="42")
    replies = await flow.send(ann, "stale 5")
    assert "Nothing is stale" in replies[-1]
    await flow.close()

Every channel the loaded plugins declare, and that has no adapter configured, gets a
`FakeChannel` with that channel's own policy (its capabilities, address form and command style),
so a handler is tested exactly as it will run, minus the provider.

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
from bot.model import Address, DeliveryReport, Inbound, InboundFile, Outbound, OutboundStatus, Person
from bot.plugins import Plugin
from bot.settings import CoreSettings
from channels.base import ChannelPolicy, Pacing, PermanentSendError, RetryableSendError, SendResult
from storage.db import Database
from storage.outbox import OutboxRepo

_ids = itertools.count(1)


def unpaced(policy: ChannelPolicy) -> ChannelPolicy:
    """A declared policy with its pacing lifted: flows should not wait on rate limits."""
    found = policy.derive(pacing=Pacing(concurrency=8))
    found.unpaced = True  # type: ignore[attr-defined]
    return found


@dataclass
class FakeChannel:
    """Records what it is asked to send; `fail_next` scripts provider errors."""

    policy: ChannelPolicy | str
    sent: list[Outbound] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    calls: int = 0
    delivered: bool = False
    on_inbound: Any = None
    on_delivery: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.policy, str):  # FakeChannel("pager"): a neutral policy of that name
            self.policy = ChannelPolicy(self.policy)

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def capabilities(self) -> Any:
        return self.policy.capabilities

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
        plugins: Iterable[str | Plugin] = (),
        channels: Iterable[str | Plugin] = (),
        start: datetime | None = None,
        database_url: str | None = None,
        config: dict[str, Any] | None = None,
        demo: bool = False,
        paced: bool = False,
        **settings: Any,
    ) -> Flow:
        """A started app with `channels` + `plugins` loaded and fakes for unconfigured channels.

        `settings` go to the core settings or to any plugin's settings class that has the field;
        `paced=True` keeps each channel's declared pacing (tests of rate limits).
        """
        clock = FakeClock(start)
        tmp = None
        if database_url is None:
            tmp = Path(tempfile.mkdtemp(prefix="huddle-flow-"))
            database_url = await migrated_sqlite(tmp)
        core_fields = {k: v for k, v in settings.items() if k in CoreSettings.model_fields}
        core = CoreSettings(
            database_url=database_url,
            durable_commits=False,
            demo=demo,
            console=False,
            http_enabled=False,
            _env_file=None,  # type: ignore[call-arg]
            **core_fields,
        )
        app = App(core, clock=clock, config=ConfigFile(config or {}), overrides=settings)
        app.load_plugins([*channels, *plugins, _fakes_plugin(paced)])
        flow = cls(app, clock, {}, tmp)
        await app.start(run_scheduler=False)
        flow.channels = {n: c for n, c in app.channels.items() if isinstance(c, FakeChannel)}
        return flow

    async def person(
        self,
        name: str,
        roles: Iterable[str] = (),
        *,
        timezone: str = "UTC",
        locale: str = "en",
        attributes: dict[str, Any] | None = None,
        **addresses: str | None,
    ) -> Person:
        """A person with `roles` and an address per declared channel (`phone="+1…"`, `chat="42"`).

        Keywords that name no declared channel are kept as attributes.
        """
        extra = dict(attributes or {})
        addrs = []
        for key, value in addresses.items():
            if key in self.app.policies:
                if value:
                    addrs.append(Address(key, value))
            else:
                extra[key] = value
        person = Person(None, name, frozenset(roles), addrs, timezone, locale, attributes=extra)
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


def _fakes_plugin(paced: bool) -> Plugin:
    """Stands in for every declared channel that has no adapter, as the console does in the demo."""

    def setup(app: App) -> None:
        if not app.hooks.stand_in.implemented:  # a flow that loads a stand-in plugin itself keeps it
            app.hooks.stand_in.implement(lambda policy: FakeChannel(policy if paced else unpaced(policy)),
                                         owner="test_fakes")

        async def unpace(app: App) -> None:
            """Real adapters (against fake provider servers) keep their policy, minus the pacing."""
            for channel in app.channels.values():
                if not paced and not getattr(channel.policy, "unpaced", False):
                    channel.policy = unpaced(channel.policy)
                    app.policies[channel.name] = channel.policy

        app.on_startup(unpace)

    return Plugin("test_fakes", setup)


__all__ = [
    "FakeChannel",
    "Flow",
    "PermanentSendError",
    "RetryableSendError",
    "migrated_sqlite",
    "test_database_url",
]
