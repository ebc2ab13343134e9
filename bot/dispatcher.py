"""From a stored inbound message to the one handler that answers it: a pipeline.

1. **Intake** (`ingest`): the channel's policy writes the address in its canonical form, the
   message is stored (deduplicated by provider id) and the call returns to the channel, which may
   now acknowledge or delete it. Handling runs in the conversation's turn: one message per
   address at a time, in arrival order; conversations run concurrently.
2. **Outer middlewares**, in order, each `async def mw(ctx, call_next) -> outcome`:
   normalise → resolve the person → compliance keywords → conversation state; then any a plugin
   added with `outer_middleware`. A middleware may answer and stop the chain.
3. **Routing** on nested routers (`bot/router.py`): callback, file, command or free text; the
   first candidate in declared precedence whose filters pass runs, with its router's inner
   middlewares around it. `SkipHandler` passes on to the next candidate.
4. The outcome (handled, ignored, failed) is recorded on the inbound row.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from bot.clock import Clock
from bot.context import Context
from bot.directory import Directory
from bot.hooks import KernelHooks
from bot.i18n import N_, t
from bot.model import Address, Button, Inbound, Outbound, OutboundKind, Person
from bot.observe import Observers
from bot.roles import Roles
from bot.router import Handler, HandlerResult, Reply, Router, SkipHandler, UsageError, parse_args, split_command
from bot.tasks import cancel_and_wait
from channels.base import ChannelPolicy
from storage.conversations import ConversationRepo
from storage.db import Database
from storage.inbox import FAILED, HANDLED, IGNORED, InboxRepo
from storage.people import PeopleRepo
from storage.processes import lost_connection

log = logging.getLogger(__name__)

FALLBACK = N_("Sorry, something went wrong on our side. Please try again in a few minutes.")
REFUSED = N_("Sorry, that command isn't available to you.")

Next = Callable[[], Awaitable[str]]
OuterMiddleware = Callable[[Context, Next], Awaitable[str]]


class SendFunc(Protocol):
    async def __call__(
        self,
        address: Address,
        body: str,
        *,
        kind: OutboundKind = ...,
        key: str | None = ...,
        buttons: list[Button] | None = ...,
        thread: str | None = ...,
        person: Person | None = ...,
        compliance: bool = ...,
    ) -> Outbound: ...


class Dispatcher:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        people: PeopleRepo,
        directory: Directory,
        router: Router,
        roles: Roles,
        hooks: KernelHooks,
        policies: Callable[[str], ChannelPolicy],
        send: SendFunc,
        deps: Mapping[str, Any],
    ) -> None:
        self.clock = clock
        self.people = people
        self.directory = directory
        self.router = router
        self.roles = roles
        self.hooks = hooks
        self._policy = policies
        self._send = send
        self.deps = deps
        self.inbox = InboxRepo(db)
        self.conversations = ConversationRepo(db)
        self.outer: list[OuterMiddleware] = [
            self._screen, self._normalise, self._resolve, self._compliance, self._conversation
        ]
        self._locks: dict[Address, tuple[asyncio.Lock, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = True
        self.owner = "local"
        """The process id work is claimed under (`App` sets it)."""
        self.handling = True
        """False in a gateway: messages are stored for the workers to claim, never handled here."""
        self.exclusive = True
        """No other process shares the database: whatever another owner claimed is left over."""
        self.claim_batch = 20
        self.poll_interval = 5.0
        self.wake = asyncio.Event()
        """Set when another process stored a message (NOTIFY) or a turn ended: claim now."""
        self._intake: asyncio.Task[None] | None = None
        self._blocked = False
        self._held: set[int] = set()
        """Messages this process is handling or has scheduled."""
        self._strays: datetime | None = None
        """When a claim failed with the database gone: it may have committed all the same."""
        self._unfinished: list[Inbound] = []
        """Messages whose handling the database's going away interrupted: handled again when it is back."""
        self.observers = Observers()

    # -- what a Context may use (bot.context.Messaging) ----------------------------------------

    def policy(self, channel: str) -> ChannelPolicy:
        return self._policy(channel)

    async def send(self, address: Address, body: str, **kwargs: Any) -> Outbound:
        return await self._send(address, body, **kwargs)

    def help_lines(self, person: Person | None, channel: str) -> list[str]:
        policy = self.policy(channel)
        lines = []
        seen: set[str] = set()
        for h in self.router.candidates("commands", person, self.roles):
            if h.hidden or h.roles is None or h.names[0] in seen:
                continue
            seen.add(h.names[0])
            usage = h.usage.replace(h.names[0], policy.command_label(h.names[0]), 1)
            lines.append(f"{usage} — {t(_locale(person), h.help)}" if h.help else usage)
        return lines

    def outer_middleware(self, mw: OuterMiddleware) -> OuterMiddleware:
        """Add a middleware that runs before matching, after the kernel's own."""
        self.outer.append(mw)
        return mw

    # -- intake ------------------------------------------------------------------------------

    def canonical(self, address: Address) -> Address:
        return Address(address.channel, self.policy(address.channel).sender(address.id))

    async def ingest(self, message: Inbound) -> int | None:
        """Store the message and schedule its handling; returns once it is committed.

        Returns the row id, or None for a redelivery of a message already stored.
        """
        message.address = self.canonical(message.address)
        inbound_id = await self.inbox.store(message, self.clock.now(), self.owner if self.handling else None)
        self.observers.inbound(message.address.channel, "stored" if inbound_id is not None else "duplicate")
        if inbound_id is None:
            log.info(
                "duplicate inbound ignored channel=%s provider_id=%s", message.address.channel, message.provider_id
            )
            return None
        message.id = inbound_id
        if self.handling:
            self._schedule(message)
        return inbound_id

    def _schedule(self, message: Inbound) -> None:
        task = asyncio.create_task(self._in_turn(message), name=f"inbound-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if message.id is not None:
            held = message.id
            self._held.add(held)
            task.add_done_callback(lambda _t: self._held.discard(held))

    async def recover(self) -> int:
        """Claim what is waiting (left over by a stopped process, or stored by a gateway) and
        handle it; then keep claiming as it comes (woken by `wake`, else every `poll_interval`)."""
        count = await self._claim()
        if self._intake is None:
            self._intake = asyncio.create_task(self._intake_loop(), name="inbound-claims")
        return count

    async def _claim(self) -> int:
        room = self.claim_batch - len(self._tasks)
        if room <= 0 or not self.accepting:
            return 0
        self._blocked = self._blocked or bool(self._tasks)
        if self._strays is not None:
            held = self._held | {m.id for m in self._unfinished if m.id is not None}
            self._unfinished += await self.inbox.strays(self.owner, self._strays, sorted(held))
            self._strays = None
        now = self.clock.now()
        try:
            claimed = await self.inbox.claim(self.owner, now, room, anyone_else=self.exclusive)
        except Exception as exc:
            if lost_connection(exc):
                self._strays = now
            raise
        again, self._unfinished = self._unfinished, []  # the database answers again
        for message in [*again, *claimed]:
            log.debug("claimed inbound_id=%s", message.id)
            self._schedule(message)
        return len(claimed)

    async def _intake_loop(self) -> None:
        while self.accepting:
            self.wake.clear()
            try:
                room = self.claim_batch - len(self._tasks)
                if room <= 0:
                    self._blocked = True  # full: the next turn to end makes room and wakes this loop
                elif await self._claim() >= room:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("claiming inbound messages failed (will retry): %s", exc)
            wait = 0.5 if self._unfinished else self.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for messages in progress (graceful stop)."""
        self.accepting = False
        if self._intake is not None:
            await cancel_and_wait([self._intake])
            self._intake = None
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
            if self._blocked:  # a claim ran while this turn held its sender: what waited may be claimable now
                self._blocked = False
                self.wake.set()
            lock, users = self._locks[address]
            if users <= 1:
                del self._locks[address]
            else:
                self._locks[address] = (lock, users - 1)

    # -- the pipeline ------------------------------------------------------------------------

    async def handle(self, message: Inbound) -> None:
        assert message.id is not None
        ctx = Context(self, message, None)
        started = time.perf_counter()
        try:
            outcome = await self._chain(ctx, 0)
            await self.inbox.finish(
                message.id, outcome, self.clock.now(), person_id=_pid(ctx.person), handler=ctx.handler_name or None
            )
            self.observers.handled(message.address.channel, outcome, time.perf_counter() - started)
        except Exception as exc:
            if lost_connection(exc):
                # Not the handler's fault: the message stays claimed by this process and is handled
                # again once the database answers (its replies carry the same keys: none doubles).
                log.warning("database lost while handling inbound_id=%s; will handle it again: %s", message.id, exc)
                self._unfinished.append(message)
                return
            self.observers.handled(message.address.channel, FAILED, time.perf_counter() - started)
            log.exception(
                "handler failed inbound_id=%s channel=%s handler=%s",
                message.id, message.address.channel, ctx.handler_name or "-",
            )
            try:
                await self.inbox.finish(
                    message.id, FAILED, self.clock.now(), person_id=_pid(ctx.person),
                    handler=ctx.handler_name or None, error=f"{type(exc).__name__}: {exc}"[:2000],
                )
                await ctx.reply(t(_locale(ctx.person), FALLBACK))
            except Exception:
                log.exception("could not record handler failure inbound_id=%s", message.id)

    async def _chain(self, ctx: Context, i: int) -> str:
        if i < len(self.outer):
            return await self.outer[i](ctx, lambda: self._chain(ctx, i + 1))
        return await self._route(ctx)

    async def _screen(self, ctx: Context, call_next: Next) -> str:
        """A machine sender (an SMS from AMAZON, a short code) is kept and counted, never handled."""
        machine = self.policy(ctx.channel).machine_sender(ctx.address.id)
        if machine is None:
            return await call_next()
        log.info("text from a %s sender stored, not answered inbound_id=%s sender=%s",
                 machine, ctx.inbound.id, ctx.address.id)
        ctx.handler_name = f"sender:{machine}"
        return IGNORED

    async def _normalise(self, ctx: Context, call_next: Next) -> str:
        """Text in Unicode NFC, so a word typed with combining accents matches the one in code."""
        ctx.inbound.text = unicodedata.normalize("NFC", ctx.inbound.text or "")
        return await call_next()

    async def _resolve(self, ctx: Context, call_next: Next) -> str:
        ctx.person = await self.directory.resolve(ctx.address, ctx.inbound.display_name)
        return await call_next()

    async def _compliance(self, ctx: Context, call_next: Next) -> str:
        """Carrier keywords (STOP / START / HELP), before any handler, as the channel's policy finds them.

        One confirmation per opt-out; an opted-out address hears only HELP and START answers (the
        outbox refuses anything else to it). The wording comes from the plugin that implements
        `hooks.compliance_text` / `hooks.contact_text`.
        """
        message, person = ctx.inbound, ctx.person
        found = None if message.callback_data else self.policy(ctx.channel).keyword(message.text)
        if found is None:
            return await call_next()
        ctx.handler_name = "compliance"
        now = self.clock.now()
        if found.kind == "opt_in":
            await self.people.set_opt_out(message.address, False, found.record, now)
            await self._answer(ctx, self.hooks.compliance_text("opted_in", person, ctx.channel), "optin")
        elif found.kind == "help":
            if await self.people.is_opted_out(message.address):
                reply = self.hooks.compliance_text("help_opted_out", person, ctx.channel)
            else:
                reply = self.hooks.contact_text(person, ctx.channel)
                commands = self.help_lines(person, ctx.channel)
                if commands and person is not None:
                    reply = "\n".join([*commands, "", reply])
            await self._answer(ctx, reply, "help")
        else:
            already = await self.people.is_opted_out(message.address)
            await self.people.set_opt_out(message.address, True, found.record, now)
            log.info("opt-out inbound_id=%s record=%s already=%s", message.id, found.record, already)
            if not already:
                await self._answer(ctx, self.hooks.compliance_text("opted_out", person, ctx.channel), "optout")
        return HANDLED

    async def _answer(self, ctx: Context, text: str, tag: str) -> None:
        await self.send(
            ctx.address, text, key=f"in:{ctx.inbound.id}:{tag}", person=ctx.person, compliance=True,
            kind=OutboundKind.REPLY,
        )

    async def _conversation(self, ctx: Context, call_next: Next) -> str:
        """Load the (person, channel) state, map a numbered reply to its button, save what changed."""
        person = ctx.person
        if person is None or person.id is None:
            return await call_next()
        ctx.state = await self.conversations.load(person.id, ctx.channel)
        before = json.dumps(ctx.state, sort_keys=True, default=str)
        self._map_numbered_reply(ctx)
        outcome = await call_next()
        if json.dumps(ctx.state, sort_keys=True, default=str) != before:
            await self.conversations.save(person.id, ctx.channel, ctx.state, self.clock.now())
        return outcome

    def _map_numbered_reply(self, ctx: Context) -> None:
        buttons = ctx.state.get("_buttons")
        text = ctx.inbound.text.strip()
        if buttons and text.isdigit() and ctx.inbound.callback_data is None:
            n = int(text)
            if 1 <= n <= len(buttons):
                ctx.inbound.callback_data = buttons[n - 1][1]
                ctx.state.pop("_buttons", None)

    # -- routing -----------------------------------------------------------------------------

    async def _route(self, ctx: Context) -> str:
        message, person = ctx.inbound, ctx.person

        if message.callback_data is not None:
            for h in self.router.candidates("callbacks", person, self.roles):
                if message.callback_data.startswith(h.prefix):
                    ctx.args = message.callback_data[len(h.prefix):]
                    outcome = await self._try(ctx, h, {})
                    if outcome is not None:
                        return outcome
            await ctx.reply(t(_locale(person), REFUSED) if person else self.hooks.stranger_text(ctx.channel))
            return IGNORED

        if message.files:
            for h in self.router.candidates("files", person, self.roles):
                outcome = await self._try(ctx, h, {})
                if outcome is not None:
                    return outcome

        split = split_command(message.text)
        if split is not None:
            name, args = split
            named = [h for h in self.router.all("commands") if name in h.names]
            if named:
                allowed = [h for h in self.router.candidates("commands", person, self.roles) if name in h.names]
                if not allowed:
                    await ctx.reply(t(_locale(person), REFUSED) if person else self.hooks.stranger_text(ctx.channel))
                    return IGNORED
                ctx.command, ctx.args = name, args
                for h in allowed:
                    try:
                        kwargs = parse_args(h, args)
                    except UsageError as exc:
                        ctx.handler_name = h.qualname
                        await ctx.reply(self._usage(h, ctx, exc))
                        return HANDLED
                    outcome = await self._try(ctx, h, kwargs)
                    if outcome is not None:
                        return outcome

        if not message.text.lstrip().startswith("/"):
            for h in self.router.candidates("messages", person, self.roles):
                outcome = await self._try(ctx, h, {})
                if outcome is not None:
                    return outcome

        if person is None or not self.roles.known(person.roles):
            await ctx.reply(self.hooks.stranger_text(ctx.channel))
            return IGNORED
        lines = self.help_lines(person, ctx.channel)
        loc = _locale(person)
        intro = (t(loc, "I didn't understand that.") if split is None
                 else t(loc, "I don't know the command “{name}”.", name=split[0]))
        await ctx.reply("\n".join([intro, t(loc, "You can use:"), *lines]) if lines else intro)
        return IGNORED

    def _usage(self, handler: Handler, ctx: Context, exc: UsageError) -> str:
        """"“x” is not a valid DAYS. Usage: /stale [DAYS]" in the sender's language."""
        loc = _locale(ctx.person)
        usage = handler.usage.replace(handler.names[0], ctx.command_label(handler.names[0]), 1)
        detail = t(loc, exc.message, **exc.values) if exc.message else ""
        return t(loc, "{detail}Usage: {usage}", detail=detail + " " if detail else "", usage=usage)

    async def _try(self, ctx: Context, handler: Handler, kwargs: dict[str, Any]) -> str | None:
        """Run `handler` if its filters pass; None means it did not take the message."""
        available = {**self.deps, **ctx.data, "person": ctx.person}
        data = await handler.check_filters(ctx, available)
        if data is None:
            return None
        previous = ctx.handler_name
        ctx.handler_name = handler.qualname
        available.update(data)
        for name in handler.injected:
            if name in available:
                kwargs[name] = available[name]
        chain = self.router.middlewares_for(handler)

        async def call(i: int = 0) -> HandlerResult:
            if i < len(chain):
                return await chain[i](ctx, lambda: call(i + 1))
            result = handler.func(ctx, **kwargs)
            return await result if inspect.isawaitable(result) else result

        try:
            result = await call()
        except SkipHandler:
            ctx.handler_name = previous
            return None
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
