"""Sending: one loop per channel that claims stored messages and hands them to the provider.

At the last step before each send it checks consent (opt-out), reachability and quiet hours;
it paces every channel with token buckets (global and per recipient), keeps each recipient's
messages in order, retries what the provider says is retryable with exponential backoff and
jitter (honouring retry_after), and never retries a permanent failure.

Delivery reports are matched here, with no timer: a channel that names each part as the provider
accepts it (`channels.base.listen_accepted`) has its receipt written before the next part goes,
so a report that overtakes `send()`'s return finds its message; a report that matches nothing is
kept in storage and applied when its receipt is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from time import perf_counter
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.model import TERMINAL_STATUSES, Address, DeliveryReport, Outbound, OutboundKind, OutboundStatus
from bot.observe import Observers
from bot.tasks import cancel_and_wait
from channels.base import (
    Channel,
    NotHandedOver,
    Pacing,
    PermanentSendError,
    RetryableSendError,
    degrade_buttons,
    listen_accepted,
    listen_ready,
)
from channels.markup import render
from storage.db import Database
from storage.outbox import OutboxRepo
from storage.people import PeopleRepo, consent_many
from storage.processes import lost_connection

if TYPE_CHECKING:
    from bot.settings import CoreSettings

log = logging.getLogger(__name__)


class TokenBucket:
    """`rate` tokens per second up to `burst`; `pause` empties it for a provider's retry_after."""

    def __init__(self, rate: float | None, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.tokens = float(self.burst)
        self.stamp = clock.monotonic()
        self.blocked_until = 0.0
        self._unpaused: asyncio.Event | None = None

    def _refill(self) -> None:
        now = self.clock.monotonic()
        if self.rate:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self) -> float:
        if self.rate is None:
            return max(0.0, self.blocked_until - self.clock.monotonic())
        self._refill()
        blocked = max(0.0, self.blocked_until - self.clock.monotonic())
        if self.tokens >= 1:
            return blocked
        return max(blocked, (1 - self.tokens) / self.rate)

    async def acquire(self) -> None:
        while (wait := self.wait_time()) > 0:
            await self._sleep(wait)
        if self.rate is not None:
            self.tokens -= 1

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock, or until `unpause` (a pause must not outlive the reason for it)."""
        if self.blocked_until <= self.clock.monotonic():
            await self.clock.sleep(seconds)
            return
        if self._unpaused is None:
            self._unpaused = asyncio.Event()
        waker = asyncio.ensure_future(self._unpaused.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()

    def pause(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, self.clock.monotonic() + seconds)

    def unpause(self) -> None:
        """Lift a pause now and wake whoever waits on it."""
        self.blocked_until = 0.0
        if self._unpaused is not None:
            self._unpaused.set()
            self._unpaused = None

    @property
    def full(self) -> bool:
        if self.rate is None:
            return True
        self._refill()
        return self.tokens >= self.burst


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """What a send gate decided for a message at the last step: refuse it, or hold it until a time."""

    reason: str
    hold_until: datetime | None = None
    """None: refused for good (status `refused`); a time: put back, not counted as an attempt."""


SendGate = Callable[[Outbound, datetime], Awaitable[GateVerdict | None]]
"""A plugin's last-step rule (e.g. a per-recipient frequency cap): None lets the message go."""


def in_quiet_hours(now: datetime, tz: str, start: time, end: time) -> datetime | None:
    """If `now` falls in the quiet window in zone `tz`, the UTC time it ends; else None."""
    local = now.astimezone(ZoneInfo(tz))
    t = local.time()
    quiet = (t >= start or t < end) if start > end else (start <= t < end)
    if not quiet:
        return None
    end_day = local.date() if t < end else local.date() + timedelta(days=1)
    ends = datetime.combine(end_day, end, tzinfo=ZoneInfo(tz))
    return ends.astimezone(now.tzinfo)


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + rng.uniform(0, delay / 2)


class ChannelSender:
    def __init__(self, outbox: Outbox, channel: Channel, pacing: Pacing) -> None:
        self.outbox = outbox
        self.channel = channel
        self.pacing = pacing
        clock = outbox.clock
        self.global_bucket = TokenBucket(pacing.global_rate, pacing.global_burst, clock)
        self.recipient_buckets: dict[Address, TokenBucket] = {}
        self.lanes: dict[Address, list[Outbound]] = {}
        self.lane_tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(max(1, pacing.concurrency))
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.running = False
        self.in_flight = 0
        self.pacing_waits = 0
        self.claiming = False
        self.room = asyncio.Event()
        self.room_at: int | None = None
        """While the claim loop waits for the lanes to drain: the backlog that wakes it."""
        self.unsent: list[Outbound] = []
        self.parked: set[int] = set()
        """Messages waiting on a retry of this channel (or behind one): due at once when it is ready again."""
        self.resumable = False
        """The channel signals when it is ready again (see `channels.base.listen_ready`)."""
        self.retrying: dict[Address, tuple[int, datetime]] = {}
        """Recipient → (message waiting for a retry, when): later messages to them wait behind it."""
        self._resumes: set[asyncio.Task[None]] = set()
        self.strays: datetime | None = None
        """When a claim failed with the database gone: it may have committed all the same."""

    async def _behind_a_retry(self, address: Address, msg: Outbound) -> bool:
        """A later message to a recipient whose earlier one waits for a retry waits behind it."""
        held = self.retrying.get(address)
        now = self.outbox.clock.now()
        if held is not None and held[1] <= now:
            del self.retrying[address]  # its retry is due: the order is the claim's again
            return False
        if held is None or msg.id is None or msg.id <= held[0]:
            return False
        await self.outbox.repo.defer(msg, held[1], "waiting behind a retry", now)
        self.park(msg)
        return True

    def park(self, msg: Outbound) -> None:
        if self.resumable and msg.id is not None:
            self.parked.add(msg.id)

    def resume(self) -> None:
        """The channel is ready again: lift the pause and retry now what was waiting for it."""
        self.global_bucket.unpause()
        self.retrying.clear()  # everything waiting is due now, and is claimed oldest first
        ids, self.parked = list(self.parked), set()
        if ids:
            task = asyncio.create_task(self._retry_now(ids), name=f"outbox-resume-{self.channel.name}")
            self._resumes.add(task)
            task.add_done_callback(self._resumes.discard)
        self.wake.set()

    async def _retry_now(self, ids: list[int]) -> None:
        try:
            count = await self.outbox.repo.retry_now(ids, self.outbox.clock.now())
        except Exception:
            log.exception("could not resume channel=%s", self.channel.name)
            return
        if count:
            log.info("channel ready again: %d message(s) retried now channel=%s", count, self.channel.name)
        self.wake.set()

    @property
    def backlog(self) -> int:
        return sum(len(v) for v in self.lanes.values())

    def start(self) -> None:
        self.running = True
        self.task = asyncio.create_task(self._loop(), name=f"outbox-{self.channel.name}")

    async def stop(self, timeout: float | None) -> None:
        """Finish the sends in flight (up to `timeout`), put back what was claimed but not sent."""
        self.running = False
        self.wake.set()
        self.room.set()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if self.task:
            # A claim under way is let finish, so the rows it takes are given back below: cut
            # off, its rows would stay `sending` for the takeover sweep to flag possibly repeated.
            await asyncio.wait({self.task}, timeout=timeout)
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        stop_sending = getattr(self.channel, "stop_sending", None)
        if stop_sending is not None:
            stop_sending()
            await asyncio.sleep(0.01)  # sends waiting their turn give their messages back
        if self.in_flight:
            log.info("waiting for %d send(s) in flight to be confirmed channel=%s (up to %s)", self.in_flight,
                     self.channel.name, "no limit" if timeout is None else f"{timeout:g} s")
        while self.in_flight and (deadline is None or loop.time() < deadline):
            await asyncio.sleep(0.01)
        tasks = [*self.lane_tasks, *self._resumes]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.unsent:
            await self.outbox.repo.release([m.id for m in self.unsent if m.id is not None], self.outbox.clock.now())
            self.unsent.clear()

    async def _loop(self) -> None:
        o = self.outbox
        window = self.pacing.concurrency * 4
        while self.running:
            try:
                if self.backlog > window // 2:
                    # Claim in bounded batches, not a row per commit as each send frees a place.
                    await self._wait_for_room(window // 2)
                    continue
                if self.strays is not None:
                    held = [m.id for lane in self.lanes.values() for m in lane if m.id is not None]
                    back = await o.repo.release_strays(self.channel.name, o.settings.worker_id, self.strays, held,
                                                       o.clock.now())
                    self.strays = None
                    if back:
                        log.warning("gave back %d message(s) claimed as the database went away channel=%s",
                                    back, self.channel.name)
                limit = max(1, window - self.backlog)
                self.claiming = True
                claim_at = o.clock.now()
                try:
                    try:
                        claimed = await o.repo.claim(self.channel.name, o.settings.worker_id, claim_at, limit)
                    except Exception as exc:
                        if lost_connection(exc):  # it may have committed all the same
                            self.strays = claim_at
                        raise
                    if not self.running:  # stopping: given back by `stop`
                        self.unsent.extend(claimed)
                        break
                    for msg in claimed:
                        self._enqueue_lane(msg)
                finally:
                    self.claiming = False
                if len(claimed) >= limit:
                    await asyncio.sleep(0)
                    continue
                await self._sleep_until_work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if lost_connection(exc):
                    log.warning("outbox claim failed, database unreachable (will retry) channel=%s: %s",
                                self.channel.name, exc)
                else:
                    log.exception("outbox loop error channel=%s", self.channel.name)
                await o.clock.sleep(1.0)

    async def _wait_for_room(self, backlog: int) -> None:
        """Until the lanes hold at most `backlog` messages (or a poll interval, as a safety net)."""
        self.room.clear()
        self.room_at = backlog
        waker = asyncio.create_task(self.room.wait())
        sleeper = asyncio.create_task(self.outbox.clock.sleep(self.outbox.settings.outbox_poll_interval))
        try:
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.room_at = None
            waker.cancel()
            sleeper.cancel()

    def _made_room(self) -> None:
        if self.room_at is not None and self.backlog <= self.room_at:
            self.room.set()

    async def _sleep_until_work(self) -> None:
        o = self.outbox
        self.wake.clear()
        wait = o.settings.outbox_poll_interval
        due = await o.repo.next_due(self.channel.name)
        if due is not None:
            wait = min(wait, max(0.0, (due - o.clock.now()).total_seconds()))
        if wait <= 0:
            return
        waker = asyncio.create_task(self.wake.wait())
        sleeper = asyncio.create_task(o.clock.sleep(wait))
        try:
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()

    def _enqueue_lane(self, msg: Outbound) -> None:
        lane = self.lanes.get(msg.address)
        if lane is not None:
            lane.append(msg)
            return
        self.lanes[msg.address] = [msg]
        task = asyncio.create_task(self._run_lane(msg.address), name=f"lane-{msg.address}")
        self.lane_tasks.add(task)
        task.add_done_callback(self.lane_tasks.discard)

    async def _run_lane(self, address: Address) -> None:
        """Send one recipient's messages in order, at that recipient's pace."""
        lane = self.lanes[address]
        bucket = self.recipient_buckets.get(address)
        if bucket is None:
            bucket = TokenBucket(self.pacing.per_recipient_rate, self.pacing.per_recipient_burst, self.outbox.clock)
            self.recipient_buckets[address] = bucket
        delivering: Outbound | None = None
        unreachable = 0.0
        try:
            while lane and self.running:
                if unreachable:  # the database went away before this message was sent: try it again
                    await self.outbox.clock.sleep(unreachable)
                msg = lane[0]
                if await self._behind_a_retry(address, msg):
                    lane.pop(0)
                    continue
                self.pacing_waits += 1
                try:
                    await bucket.acquire()
                    await self.global_bucket.acquire()
                finally:
                    self.pacing_waits -= 1
                async with self.slots:
                    if not self.running:  # stopping: what waited for a slot is put back, not sent
                        break
                    self.in_flight += 1
                    delivering = msg
                    try:
                        retry_at = await self.outbox.deliver(self.channel, msg, self)
                    except NotHandedOver:
                        delivering = None
                        break
                    except Exception as exc:
                        if not lost_connection(exc):
                            raise
                        # Not sent (once sent, `deliver` records it however long that takes):
                        # the row is still ours, `sending`; the same message is tried again.
                        delivering = None
                        log.warning("database unreachable before sending outbox_id=%s; will try again: %s",
                                    msg.id, exc)
                        unreachable = min(5.0, max(0.25, unreachable * 2))
                        continue
                    finally:
                        self.in_flight -= 1
                    delivering = None
                    unreachable = 0.0
                lane.pop(0)
                self._made_room()
                if retry_at is None and (held := self.retrying.get(address)) is not None and held[0] == msg.id:
                    del self.retrying[address]
                if retry_at is not None:
                    # Keep this recipient's order: what was queued behind waits for the retry.
                    if msg.id is not None and address not in self.retrying:
                        self.retrying[address] = (msg.id, retry_at)
                    for later in lane:
                        await self.outbox.repo.defer(later, retry_at, "waiting behind a retry", self.outbox.clock.now())
                        self.park(later)
                    lane.clear()
        finally:
            if not self.running:
                # A send cut off mid-way stays `sending`: whether it left is unknown, so only the
                # takeover sweep re-queues it, flagged possibly repeated. The rest never started.
                self.unsent.extend(m for m in lane if m is not delivering)
            self.lanes.pop(address, None)
            self._made_room()
            if bucket.full:
                self.recipient_buckets.pop(address, None)


class Outbox:
    def __init__(self, db: Database, clock: Clock, settings: CoreSettings, people: PeopleRepo) -> None:
        self.db = db
        self.repo = OutboxRepo(db)
        self.clock = clock
        self.settings = settings
        self.people = people
        self.senders: dict[str, ChannelSender] = {}
        self.rng = random.Random()
        self.on_sent: list[Callable[[Outbound], Awaitable[None]]] = []
        self.on_failed: list[Callable[[Outbound], Awaitable[None]]] = []
        """Called with a message once it is marked failed or refused (after its row is updated)."""
        self.gates: list[SendGate] = []
        """Last-step rules of plugins, asked after consent and quiet hours (see `GateVerdict`)."""
        self._receipt_locks: dict[str, asyncio.Lock] = {}
        self._attempt_waiters: dict[int, list[asyncio.Future[None]]] = {}
        self.exclusive = True
        """No other process shares the database (SQLite): any send left `sending` is a dead run's."""
        self._sweeper: asyncio.Task[None] | None = None
        self.observers = Observers()

    def register(self, channel: Channel) -> None:
        pacing = self.pacing_for(channel)
        sender = ChannelSender(self, channel, pacing)
        self.senders[channel.name] = sender
        sender.resumable = listen_ready(channel, sender.resume)
        listen_accepted(channel, self.accepted)

    def pacing_for(self, channel: Channel) -> Pacing:
        """The limits the channel's policy declares (each adapter reads its own settings)."""
        return channel.policy.pacing

    async def enqueue(self, msg: Outbound) -> Outbound:
        stored, _new = await self.repo.enqueue(msg, self.clock.now())
        sender = self.senders.get(msg.address.channel)
        if sender is not None:
            sender.wake.set()
        return stored

    def start(self) -> None:
        for sender in self.senders.values():
            sender.start()
        if self.senders and not self.exclusive:
            self._sweeper = asyncio.create_task(self._takeovers(), name="outbox-takeovers")

    async def stop(self, timeout: float | None = None) -> None:
        if self._sweeper is not None:
            await cancel_and_wait([self._sweeper])
            self._sweeper = None
        await asyncio.gather(*(s.stop(timeout) for s in self.senders.values()))

    async def recover(self) -> int:
        """Re-queue sends of this process's channels left in flight by a process that is gone
        (its lease ran out), flagged possibly repeated; a live process's sends are never touched."""
        if not self.senders:
            return 0
        count = await self.repo.recover(self.settings.worker_id, list(self.senders), self.clock.now(),
                                        anyone_else=self.exclusive)
        if count:
            log.warning("re-queued %d message(s) left claimed by a stopped process; those it had handed to the "
                        "provider are flagged resent", count)
            for sender in self.senders.values():
                sender.wake.set()
        return count

    async def _takeovers(self) -> None:
        """The safety sweep: a process that died mid-send has its sends re-queued once its lease is over."""
        while True:
            await asyncio.sleep(self.settings.outbox_poll_interval)
            try:
                await self.recover()
            except Exception as exc:
                log.warning("sweep for sends of stopped processes failed (will retry): %s", exc)

    def wake(self, channel: str) -> None:
        """Another process queued something for `channel` (or all channels when empty)."""
        for name, sender in self.senders.items():
            if not channel or name == channel:
                sender.wake.set()

    def lease_lost(self) -> None:
        """This process could not beat for a whole lease: what it claimed but has not begun to
        send may have been taken over. Forget those lanes; rows still ours go back to the queue."""
        for sender in self.senders.values():
            dropped = [m for lane in sender.lanes.values() for m in lane[1:] if m.id is not None]
            for lane in sender.lanes.values():
                del lane[1:]
            if dropped:
                task = asyncio.create_task(self.repo.release_mine(
                    self.settings.worker_id, [m.id for m in dropped if m.id is not None], self.clock.now()))
                sender._resumes.add(task)
                task.add_done_callback(sender._resumes.discard)
            sender.wake.set()

    async def idle(self) -> None:
        """Wait until nothing is in flight and nothing due is queued, except what waits for its pace."""
        while True:
            busy = False
            for name, sender in self.senders.items():
                if sender.claiming or sender.in_flight or len(sender.lane_tasks) > sender.pacing_waits:
                    busy = True
                    break
                due = await self.repo.next_due(name)
                if due is not None and due <= self.clock.now():
                    sender.wake.set()
                    busy = True
                    break
            if not busy:
                return
            await asyncio.sleep(0.001)

    def _receipts(self, channel: str) -> contextlib.AbstractAsyncContextManager[object]:
        """One channel's receipts and reports are written one at a time (a report and the receipt
        it belongs to never commit side by side unseen by each other).

        A database that runs its writes one after another (SQLite; PostgreSQL with group commit,
        one transaction at a time) does that already, and lets a burst of sends share a commit;
        a lock here would make every send of the channel wait for the previous one's commit.
        """
        if self.db.writes_in_turn:
            return contextlib.nullcontext()
        lock = self._receipt_locks.get(channel)
        if lock is None:
            lock = self._receipt_locks[channel] = asyncio.Lock()
        return lock

    async def accepted(self, outbound: Outbound, provider_id: str) -> None:
        """A channel's word that the provider took (a part of) `outbound` under `provider_id`.

        The receipt is written before this returns, and so before the channel sends the next part.
        Never raises: should the write fail, the id is recorded when `send` returns.
        """
        if outbound.id is None:
            return
        try:
            async with self._receipts(outbound.address.channel):
                matched = await self.repo.record_receipt(outbound, provider_id, self.clock.now())
        except Exception:
            log.exception("receipt not recorded at acceptance outbox_id=%s provider_id=%s", outbound.id, provider_id)
            return
        if matched:
            log.info("kept delivery report matched outbox_id=%s provider_id=%s", outbound.id, provider_id)

    async def delivery(self, report: DeliveryReport) -> None:
        async with self._receipts(report.channel):
            msg = await self.repo.delivery(report, self.clock.now())
        if msg is not None:
            log.info("delivery report outbox_id=%s status=%s", msg.id, msg.status)
            return
        log.warning("delivery report for no known message kept channel=%s provider_id=%s delivered=%s",
                    report.channel, report.provider_id, report.delivered)

    async def first_attempt(self, outbound_id: int, timeout: float) -> Outbound | None:
        """The message as its first attempt left it (sent, refused, failed, or queued for a retry
        with the reason), or None if no attempt was made within `timeout` seconds (app clock).

        For callers that must tell a person the truth about one message, e.g. staff replying to a
        customer: "Sent" only when it was, otherwise the reason.
        """
        current = await self.repo.get(outbound_id)
        if current is None or current.status in TERMINAL_STATUSES or current.status is OutboundStatus.SENT:
            return current
        if current.status is OutboundStatus.QUEUED and current.attempts > 0:
            return current  # tried before (a retry is due later): its reason says why
        if current.address.channel not in self.senders:
            return None  # no channel sends it in this process (a gateway elsewhere will)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempt_waiters.setdefault(outbound_id, []).append(fut)
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({fut, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiters = self._attempt_waiters.get(outbound_id, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._attempt_waiters.pop(outbound_id, None)
        if not fut.done():
            return None
        return await self.repo.get(outbound_id)

    async def deliver(self, channel: Channel, msg: Outbound, sender: ChannelSender) -> datetime | None:
        """The last step: consent, reachability and quiet hours, then the provider call.

        Returns when the message will be tried again, if it will.
        """
        try:
            return await self._deliver(channel, msg, sender)
        finally:
            for fut in self._attempt_waiters.pop(msg.id, []) if msg.id is not None else []:
                if not fut.done():
                    fut.set_result(None)

    async def _failed(self, msg: Outbound, reason: str, *, refused: bool = False) -> None:
        if refused:
            self.observers.send(msg.address.channel, "refused", 0.0)
        await self.repo.mark_failed(msg, reason, self.clock.now(), refused=refused)
        msg.status = OutboundStatus.REFUSED if refused else OutboundStatus.FAILED
        msg.reason = reason
        for hook in self.on_failed:
            try:
                await hook(msg)
            except Exception:
                log.exception("on_failed hook raised outbox_id=%s", msg.id)

    async def _deliver(self, channel: Channel, msg: Outbound, sender: ChannelSender) -> datetime | None:
        now = self.clock.now()
        refusal = channel.policy.refuses(msg)
        if refusal is not None:
            await self._failed(msg, refusal, refused=True)
            log.info("not sent: %s outbox_id=%s", refusal, msg.id)
            return None
        # The hand-over is committed before the provider call: should this process die from then
        # on, the send may have gone out, and whoever takes it over flags it possibly repeated
        # (this one, not the rest of what this process claimed). Written while the last-step
        # checks read, so it costs the send no wait of its own; a message those checks stop is
        # settled (refused, held) and never taken over, whatever its hand-over says.
        handing = asyncio.ensure_future(self.repo.hand_over(msg, now))
        try:
            return await self._last_step(channel, msg, sender, now, handing)
        finally:
            if not handing.done():
                await asyncio.wait({handing})
            if not handing.cancelled():
                handing.exception()  # retrieved: a failed hand-over is raised where it matters

    async def _last_step(self, channel: Channel, msg: Outbound, sender: ChannelSender, now: datetime,
                         handing: asyncio.Future[None]) -> datetime | None:

        opted_out, unreachable = await self.db.query_many(consent_many, msg.address)
        if opted_out and not msg.compliance:
            await self._failed(msg, "opted out", refused=True)
            log.info("not sent: recipient opted out outbox_id=%s", msg.id)
            return None
        if unreachable:
            await self._failed(msg, f"unreachable: {unreachable}", refused=True)
            return None
        if msg.kind is OutboundKind.PROACTIVE and msg.quiet_tz:
            until = in_quiet_hours(now, msg.quiet_tz, self.settings.quiet_hours_start, self.settings.quiet_hours_end)
            if until is not None:
                await self.repo.defer(msg, until, "held for quiet hours", now)
                return None
        for gate in self.gates:
            verdict = await gate(msg, now)
            if verdict is None:
                continue
            if verdict.hold_until is None:
                await self._failed(msg, verdict.reason, refused=True)
                log.info("not sent: %s outbox_id=%s", verdict.reason, msg.id)
                return None
            await self.repo.defer(msg, verdict.hold_until, verdict.reason, now)
            return None
        body, buttons = msg.body, msg.buttons
        caps = channel.policy.capabilities
        if buttons and not caps.buttons:
            body, buttons = degrade_buttons(body, buttons), []
        # The one place neutral markup becomes the channel's own (channels/markup.py).
        to_send = Outbound(**{**_fields(msg), "body": render(body, caps.markup), "buttons": buttons})
        await handing  # committed (a database gone away raises here: not sent, tried again)
        started = perf_counter()
        try:
            result = await channel.send(to_send)
        except RetryableSendError as exc:
            self.observers.send(channel.name, "retry", perf_counter() - started)
            self.observers.retry(channel.name, exc.retry_after is not None)
            return await self._retry(msg, exc.reason, exc.retry_after, sender)
        except NotHandedOver:
            raise  # the lane gives it back (see `_run_lane`)
        except PermanentSendError as exc:
            self.observers.send(channel.name, "failed", perf_counter() - started)
            await self._failed(msg, exc.reason)
            if exc.unreachable:
                await self.people.mark_unreachable(msg.address, exc.reason, self.clock.now())
            log.warning("send failed permanently outbox_id=%s channel=%s reason=%s", msg.id, channel.name, exc.reason)
            return None
        except Exception as exc:  # a bug or an unexpected provider answer: keep the message
            log.exception("send raised outbox_id=%s channel=%s", msg.id, channel.name)
            self.observers.send(channel.name, "retry", perf_counter() - started)
            self.observers.retry(channel.name, False)
            return await self._retry(msg, f"{type(exc).__name__}: {exc}", None, sender)
        self.observers.send(channel.name, "delivered" if result.delivered else "sent", perf_counter() - started)
        await self._until_recorded(msg, lambda: self._mark_sent(msg, result.provider_ids, result.delivered))
        for hook in self.on_sent:
            await hook(msg)
        return None

    async def _mark_sent(self, msg: Outbound, provider_ids: list[str], delivered: bool) -> None:
        if delivered or not provider_ids:
            await self.repo.mark_sent(msg, list(provider_ids), delivered, self.clock.now())
            return
        async with self._receipts(msg.address.channel):  # reports will follow: written in turn with them
            await self.repo.mark_sent(msg, list(provider_ids), False, self.clock.now())

    async def _until_recorded(self, msg: Outbound, write: Callable[[], Awaitable[None]]) -> None:
        """Write what a send did, waiting for the database as long as it takes: the provider has the
        message, so trying the send again would repeat it (a restart of the database, a cut)."""
        delay = 0.25
        while True:
            try:
                await write()
                return
            except Exception as exc:
                if not lost_connection(exc):
                    raise
                log.warning("database unreachable recording a send outbox_id=%s; will try again in %.2fs: %s",
                            msg.id, delay, exc)
            await self.clock.sleep(delay)
            delay = min(5.0, delay * 2)

    async def _retry(
        self, msg: Outbound, reason: str, retry_after: float | None, sender: ChannelSender
    ) -> datetime | None:
        now = self.clock.now()
        if msg.attempts >= self.settings.outbox_max_attempts:
            await self._failed(msg, f"gave up after {msg.attempts} attempts: {reason}")
            return None
        delay = backoff(msg.attempts, self.settings.outbox_backoff_base, self.settings.outbox_backoff_max, self.rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
            sender.global_bucket.pause(retry_after)
        retry_at = now + timedelta(seconds=delay)
        await self.repo.mark_retry(msg, retry_at, reason, now)
        sender.park(msg)
        log.info("send will be retried outbox_id=%s in=%.1fs reason=%s", msg.id, delay, reason)
        return retry_at


def _fields(msg: Outbound) -> dict[str, object]:
    return {f: getattr(msg, f) for f in msg.__dataclass_fields__}


__all__ = ["GateVerdict", "OutboundStatus", "Outbox", "SendGate", "TokenBucket", "backoff", "in_quiet_hours"]
