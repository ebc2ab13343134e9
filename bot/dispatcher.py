"""From a stored inbound message to the one handler that answers it.

Order of work for every message: store it (deduplicated by provider id) and return to the
channel; then, in the conversation's turn, resolve the sender, apply the compliance keywords,
match a handler by callback, file, command or free text, check roles, run it, record the outcome.
Messages of one conversation run one at a time in arrival order; conversations run concurrently.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot import optout
from bot.context import Context
from bot.directory import normalize_address
from bot.i18n import N_, t
from bot.model import Address, Inbound, OutboundKind, Person, Role
from bot.phones import SenderKind, sender_kind
from bot.router import Handler, HandlerResult, Reply, UsageError, parse_args, split_command
from storage.conversations import ConversationRepo
from storage.inbox import FAILED, HANDLED, IGNORED, InboxRepo

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

FALLBACK = N_("Sorry, something went wrong on our side. Please try again in a few minutes.")
REFUSED = N_("Sorry, that command isn't available to you.")
STRANGER = N_("Hi! I don't know you yet, so I can't share anything here. Ask your Huddle admin to enroll you.")

COMMAND_STYLE: dict[str, Callable[[str], str]] = {
    "sms": str.upper,
    "telegram": lambda n: f"/{n}",
}


class Dispatcher:
    def __init__(self, app: App) -> None:
        self.app = app
        self.inbox = InboxRepo(app.db)
        self.conversations = ConversationRepo(app.db)
        self._locks: dict[Address, tuple[asyncio.Lock, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.contact_text: Callable[..., str] = self._default_contact
        self.stranger_text: dict[str, str] = {}
        self.accepting = True

    # -- intake ------------------------------------------------------------------------------

    async def ingest(self, message: Inbound) -> int | None:
        """Store the message and schedule its handling; returns once it is committed.

        Returns the row id, or None for a redelivery of a message already stored.
        """
        message.address = normalize_address(message.address)
        inbound_id = await self.inbox.store(message, self.app.clock.now())
        if inbound_id is None:
            log.info(
                "duplicate inbound ignored channel=%s provider_id=%s", message.address.channel, message.provider_id
            )
            return None
        message.id = inbound_id
        self._schedule(message)
        return inbound_id

    def _schedule(self, message: Inbound) -> None:
        task = asyncio.create_task(self._in_turn(message), name=f"inbound-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self) -> int:
        """Handle messages that were stored but not handled before the last stop."""
        pending = await self.inbox.unhandled()
        for message in pending:
            log.info("handling message left over from last run inbound_id=%s", message.id)
            self._schedule(message)
        return len(pending)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for messages in progress (graceful stop)."""
        self.accepting = False
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    async def _in_turn(self, message: Inbound) -> None:
        address = message.address
        lock, users = self._locks.get(address, (asyncio.Lock(), 0))
        self._locks[address] = (lock, users + 1)
        try:
            async with lock:
                await self.handle(message)
        finally:
            lock, users = self._locks[address]
            if users <= 1:
                del self._locks[address]
            else:
                self._locks[address] = (lock, users - 1)

    # -- handling ----------------------------------------------------------------------------

    async def handle(self, message: Inbound) -> None:
        app = self.app
        assert message.id is not None
        person: Person | None = None
        ctx: Context | None = None
        try:
            kind = self._sender_kind(message.address)
            if kind is not SenderKind.PHONE:
                # AMAZON, O2, a short code: kept and counted, never a lead, never answered.
                log.info("text from a %s sender stored, not answered inbound_id=%s sender=%s",
                         kind.value, message.id, message.address.id)
                await self.inbox.finish(message.id, IGNORED, app.clock.now(), handler=f"sender:{kind.value}")
                return
            person = await app.directory.resolve(message.address, message.display_name)
            if await self._compliance(message, person):
                await self.inbox.finish(
                    message.id, HANDLED, app.clock.now(), person_id=_pid(person), handler="compliance"
                )
                return
            state = await self.conversations.load(person.id, message.address.channel) if person and person.id else {}
            before = json.dumps(state, sort_keys=True, default=str)
            ctx = Context(app, message, person, state=state)
            outcome = await self._dispatch(ctx)
            if person and person.id and json.dumps(ctx.state, sort_keys=True, default=str) != before:
                await self.conversations.save(person.id, message.address.channel, ctx.state, app.clock.now())
            await self.inbox.finish(
                message.id, outcome, app.clock.now(), person_id=_pid(person), handler=ctx.handler_name or None
            )
        except Exception as exc:
            log.exception(
                "handler failed inbound_id=%s channel=%s handler=%s",
                message.id,
                message.address.channel,
                ctx.handler_name if ctx else "-",
            )
            try:
                await self.inbox.finish(
                    message.id,
                    FAILED,
                    app.clock.now(),
                    person_id=_pid(person),
                    handler=ctx.handler_name if ctx else None,
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
                fallback = ctx or Context(app, message, person)
                await fallback.reply(t(_locale(person), FALLBACK))
            except Exception:
                log.exception("could not record handler failure inbound_id=%s", message.id)

    @staticmethod
    def _sender_kind(address: Address) -> SenderKind:
        return sender_kind(address.id) if address.channel == "sms" else SenderKind.PHONE

    async def _compliance(self, message: Inbound, person: Person | None) -> bool:
        """STOP / START / HELP on texting channels: the law's rules, before any handler.

        Opting out follows `bot.optout` (any reasonable wording, FCC 24-18); opting back in and
        HELP need their own word. One confirmation per opt-out; an opted-out number hears only
        HELP and START answers (the outbox refuses anything else to it).
        """
        if message.address.channel not in self.app.settings.compliance_channels or message.callback_data:
            return False
        text = message.text
        now = self.app.clock.now()
        name = self.app.settings.store_name
        if optout.is_opt_in(text):
            await self.app.people.set_opt_out(message.address, False, optout.normalise(text)[:32], now)
            await self.app.send(
                message.address,
                f"{name}: you're subscribed again. Reply STOP to opt out, HELP for help.",
                key=f"in:{message.id}:optin",
                person=person,
                compliance=True,
                kind=OutboundKind.REPLY,
            )
            return True
        if optout.is_help(text):
            opted_out = await self.app.people.is_opted_out(message.address)
            reply = self.contact_text(person, opted_out=opted_out)
            commands = self.help_lines(person, message.address.channel)
            if commands and not opted_out and person is not None and not person.roles <= {Role.CUSTOMER}:
                reply = "\n".join([*commands, "", reply])
            await self.app.send(
                message.address,
                reply,
                key=f"in:{message.id}:help",
                person=person,
                compliance=True,
                kind=OutboundKind.REPLY,
            )
            return True
        found = optout.match(text)
        if found is not None:
            already = await self.app.people.is_opted_out(message.address)
            await self.app.people.set_opt_out(message.address, True, f"{found.rule}:{found.sentence}"[:32], now)
            log.info("opt-out inbound_id=%s rule=%s already=%s", message.id, found.rule, already)
            if not already:
                await self.app.send(
                    message.address,
                    f"{name}: you're unsubscribed and will get no more messages. Reply START to resubscribe.",
                    key=f"in:{message.id}:optout",
                    person=person,
                    compliance=True,
                    kind=OutboundKind.REPLY,
                )
            return True
        return False

    async def _dispatch(self, ctx: Context) -> str:
        message, person = ctx.inbound, ctx.person
        root = self.app.router
        self._map_numbered_reply(ctx)

        if message.callback_data is not None:
            for h in root.all("callbacks"):
                if message.callback_data.startswith(h.prefix) and h.allows(person):
                    ctx.args = message.callback_data[len(h.prefix) :]
                    return await self._run(ctx, h, {})
            await ctx.reply(t(_locale(person), REFUSED) if person else self._stranger(ctx))
            return IGNORED

        if message.files:
            for h in root.all("files"):
                if h.allows(person) and await h.passes_filters(ctx):
                    return await self._run(ctx, h, {})

        split = split_command(message.text)
        if split is not None:
            name, args = split
            matches = [h for h in root.all("commands") if name in h.names]
            if matches:
                # A handler for the sender's role wins over one open to anyone (a role's own /help).
                allowed = next((h for h in matches if h.roles is not None and h.allows(person)), None) or next(
                    (h for h in matches if h.allows(person)), None
                )
                if allowed is None:
                    await ctx.reply(t(_locale(person), REFUSED) if person else self._stranger(ctx))
                    return IGNORED
                ctx.command, ctx.args = name, args
                try:
                    kwargs = parse_args(allowed, args)
                except UsageError as exc:
                    await ctx.reply(self._usage(allowed, ctx, exc))
                    ctx.handler_name = allowed.qualname
                    return HANDLED
                return await self._run(ctx, allowed, kwargs)

        if not message.text.lstrip().startswith("/"):
            for h in root.all("messages"):
                if h.allows(person) and await h.passes_filters(ctx):
                    return await self._run(ctx, h, {})

        if person is None or not person.roles:
            await ctx.reply(self._stranger(ctx))
            return IGNORED
        lines = self.help_lines(person, ctx.channel)
        loc = _locale(person)
        intro = (t(loc, "I didn't understand that.") if split is None
                 else t(loc, "I don't know the command “{name}”.", name=split[0]))
        await ctx.reply("\n".join([intro, t(loc, "You can use:"), *lines]) if lines else intro)
        return IGNORED

    def _map_numbered_reply(self, ctx: Context) -> None:
        buttons = ctx.state.get("_buttons")
        text = ctx.inbound.text.strip()
        if buttons and text.isdigit() and ctx.inbound.callback_data is None:
            n = int(text)
            if 1 <= n <= len(buttons):
                ctx.inbound.callback_data = buttons[n - 1][1]
                ctx.state.pop("_buttons", None)

    def _default_contact(self, person: Person | None, *, opted_out: bool = False) -> str:
        """HELP: who we are and how to reach us; to an opted-out number, how to opt back in."""
        s = self.app.settings
        if opted_out:
            return f"{s.store_name}: you're unsubscribed and get no texts from us. Reply START to opt back in."
        return f"{s.store_name}: {s.store_contact}"

    def _stranger(self, ctx: Context) -> str:
        return t(None, self.stranger_text.get(ctx.channel, STRANGER))

    def command_label(self, name: str, channel: str) -> str:
        return COMMAND_STYLE.get(channel, lambda n: n)(name)

    def help_lines(self, person: Person | None, channel: str) -> list[str]:
        lines = []
        seen: set[str] = set()
        for h in self.app.router.all("commands"):
            if h.hidden or not h.allows(person) or h.names[0] in seen or h.roles is None:
                continue
            seen.add(h.names[0])
            usage = h.usage.replace(h.names[0], self.command_label(h.names[0], channel), 1)
            lines.append(f"{usage} — {t(_locale(person), h.help)}" if h.help else usage)
        return lines

    def _usage(self, handler: Handler, ctx: Context, exc: UsageError) -> str:
        """"“x” is not a valid DAYS. Usage: /stale [DAYS]" in the sender's language."""
        loc = _locale(ctx.person)
        usage = handler.usage.replace(handler.names[0], self.command_label(handler.names[0], ctx.channel), 1)
        detail = t(loc, exc.message, **exc.values) if exc.message else ""
        return t(loc, "{detail}Usage: {usage}", detail=detail + " " if detail else "", usage=usage)

    async def _run(self, ctx: Context, handler: Handler, kwargs: dict[str, Any]) -> str:
        ctx.handler_name = handler.qualname
        for name in handler.injected:
            if name in self.app.deps:
                kwargs[name] = self.app.deps[name]
            elif name == "person":
                kwargs[name] = ctx.person
        chain = self.app.router.middlewares_for(handler)

        async def call(i: int = 0) -> HandlerResult:
            if i < len(chain):
                return await chain[i](ctx, lambda: call(i + 1))
            result = handler.func(ctx, **kwargs)
            return await result if inspect.isawaitable(result) else result

        try:
            result = await call()
        except UsageError as exc:
            if handler.names:
                await ctx.reply(self._usage(handler, ctx, exc))
            elif exc.message:
                await ctx.reply(t(_locale(ctx.person), exc.message, **exc.values))
            return HANDLED
        if isinstance(result, Reply):
            await ctx.reply(result.text, result.buttons)
        elif isinstance(result, str) and result:
            await ctx.reply(result)
        return HANDLED


def _locale(person: Person | None) -> str | None:
    return person.locale if person else None


def _pid(person: Person | None) -> int | None:
    return person.id if person else None
