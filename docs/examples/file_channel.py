"""A whole channel in one file: messages in and out as JSON lines in two files.

A stand-in for any provider (an email gateway, a pager service, a chat API): it declares its
policy, runs an adapter only when configured, hands every line it reads to the kernel and
appends every send to the out-file. `docs/howto-channel.md` walks through it;
`tests/test_docs_examples.py` runs it.

    HUDDLE_FILE_CHANNEL_INBOX=in.jsonl HUDDLE_FILE_CHANNEL_OUTBOX=out.jsonl python main.py
    echo '{"from": "ann", "text": "help"}' >> in.jsonl
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field

from bot.clock import Clock
from bot.model import Address, Inbound, Outbound
from bot.plugins import Plugin
from bot.settings import HuddleSettings
from channels.base import (
    Capabilities,
    ChannelHealth,
    ChannelPolicy,
    DeliveryHandler,
    InboundHandler,
    Markup,
    Pacing,
    PermanentSendError,
    SendResult,
)


class FileChannelSettings(HuddleSettings):
    file_channel_inbox: Path | None = Field(None, description="JSON lines to read: {\"from\": ID, \"text\": ...}")
    file_channel_outbox: Path | None = Field(None, description="where sends are appended as JSON lines")
    file_channel_poll: float = Field(0.2, gt=0, description="seconds between looks at the inbox file")


class FilePolicy(ChannelPolicy):
    """What the rest of Huddle needs to know about this channel, adapter or not."""

    name = "file"
    capabilities = Capabilities(max_length=10_000, markup=Markup.PLAIN)  # no buttons: they become numbers
    pacing = Pacing(global_rate=50.0, global_burst=50)
    address_label = "file user name"

    def normalize(self, ident: str) -> str:
        ident = ident.strip().lower()
        if not ident.isidentifier():
            raise ValueError(f"a file user name is a word, got {ident!r}")
        return ident


class FileChannel:
    """The adapter: translates lines into `Inbound`s and `Outbound`s into lines. It decides nothing."""

    name = "file"

    def __init__(self, settings: FileChannelSettings, policy: ChannelPolicy, clock: Clock) -> None:
        assert settings.file_channel_inbox and settings.file_channel_outbox
        self.inbox, self.outbox = settings.file_channel_inbox, settings.file_channel_outbox
        self.poll = settings.file_channel_poll
        self.policy = policy
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._offset = 0
        self._error: str | None = None

    async def start(self, on_inbound: InboundHandler, on_delivery: DeliveryHandler) -> None:
        self._task = asyncio.create_task(self._read(on_inbound), name="file-channel")

    async def _read(self, on_inbound: InboundHandler) -> None:
        while True:
            try:
                lines = self.inbox.read_bytes()[self._offset:] if self.inbox.exists() else b""
            except OSError as exc:
                self._error = str(exc)
                lines = b""
            while b"\n" in lines:
                line, lines = lines.split(b"\n", 1)
                await self._one(line, on_inbound)
                self._offset += len(line) + 1  # moved on only once the kernel has stored it
            await asyncio.sleep(self.poll)

    async def _one(self, line: bytes, on_inbound: InboundHandler) -> None:
        try:
            data: Any = json.loads(line)
            sender, text = str(data["from"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            self._error = f"unreadable line at byte {self._offset}"
            return  # a real channel would keep it raw for the operator (see channels/sms)
        await on_inbound(Inbound(
            address=Address("file", sender),
            text=text,
            provider_id=f"file:{self._offset}",  # the same line read twice is stored once
            received_at=self.clock.now(),
        ))

    async def send(self, outbound: Outbound) -> SendResult:
        record = {"to": outbound.address.id, "text": outbound.body}
        try:
            with self.outbox.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise PermanentSendError(f"cannot write {self.outbox}: {exc.strerror}") from None
        return SendResult([f"file-{uuid.uuid4().hex[:8]}"], delivered=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def health(self) -> ChannelHealth:
        return ChannelHealth(self._error is None, {"inbox": str(self.inbox), "last_error": self._error})


def setup(app: Any) -> None:
    settings = app.use_settings(FileChannelSettings)
    policy = app.declare_channel(FilePolicy())  # always: addresses, help and stand-ins need it
    if settings.file_channel_inbox and settings.file_channel_outbox:
        summary = f"files {settings.file_channel_inbox} → {settings.file_channel_outbox}"
        app.add_channel_factory("file", lambda: FileChannel(settings, policy, app.clock), summary)


plugin = Plugin("file", setup, description="JSON-lines files as a channel (an example)")
