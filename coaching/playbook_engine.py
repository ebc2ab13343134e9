"""The playbook engine: events from the log become runs; due runs execute their steps.

Two passes, each resumable after a crash:

* `consume` reads the events after the engine's durable cursor, evaluates every playbook whose
  trigger is the event's type, and in ONE transaction creates the runs (unique per playbook,
  event and person: a redelivered webhook never starts a second journey), stops the runs the
  event ends (stop-when: replied, visited, opted out) and moves the cursor past the batch.
* `run_due` claims runs whose `wake_at` has come (a conditional update: one winner) and executes
  steps until a wait, the end, or a failure (kept with its error; retried with backoff). A send
  goes through the outbox with the key `…playbook:<run>:<step>`, so a crash between queuing and
  recording it queues nothing twice; opt-out, quiet hours and the frequency cap are the
  outbox's to enforce.

Both passes work on batches, which is what makes them fast (bench/playbooks.py): a batch of
events reads its people in one query and shares one CEL context per event among all the
playbooks on its trigger (converting the context is most of an evaluation's cost); a batch of
due runs is claimed in one transaction, reads its people and events once, and writes every step
result and new position in one transaction (executemany) after its sends. A journey that opens
with a wait ("the next morning", "in 21 days") is written already waiting, its first step
recorded with it, unless its playbook is paused: the rows `run_due` would write a moment later.

Held-out people enter the journey like everyone (waits, branches, the report counts them) but
get no message and no award: that difference is what `playbooks report` measures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.clock import Clock
from bot.model import Address
from coaching.playbooks import (
    SCHEDULE,
    STOP_EVENTS,
    VISIT_OVERDUE,
    Journey,
    Playbook,
    RhythmRules,
    Step,
    cel,
    customer_context,
    event_context,
    held_out,
    next_local,
    overdue,
    render,
)
from storage.db import Database
from storage.events import Event, EventLog, NewEvent
from storage.loyalty import LedgerEntry
from storage.playbooks import (
    DONE,
    FAILED,
    HELD_OUT,
    MARKETING_KEY,
    OPEN,
    SENT,
    STOPPED,
    WAITING,
    FirstWait,
    NewRun,
    PlaybookRepo,
    Run,
    Subject,
    move_row,
    step_row,
)

log = logging.getLogger(__name__)


class Messenger(Protocol):
    """Where a run's messages go: the outbox live, a list in a replay."""

    async def send(self, address: Address, body: str, key: str, person_id: int | None, at: datetime,
                   playbook: str = "") -> int | None:
        """Queue a message to a customer; the outbox row id."""
        ...

    async def notify(self, body: str, key: str, at: datetime) -> None:
        """Tell staff (Slack, or the console)."""
        ...


@dataclass
class EngineSettings:
    default_timezone: str = "UTC"
    rhythm: RhythmRules = field(default_factory=RhythmRules)
    max_attempts: int = 5
    retry_base: float = 30.0
    retry_cap: float = 3600.0
    lease: timedelta = timedelta(minutes=5)
    guard_floor: int = 20
    """The hourly share guard never pauses a playbook below this many messages an hour."""
    store_name: str = ""
    concurrency: int = 64
    """Due runs advanced at once: their writes share transactions, so a burst costs few disk syncs."""


def address_of(subject: Subject | None) -> Address | None:
    """The person's own channel (their first address), else the CRM phone by SMS."""
    if subject is None:
        return None
    if subject.addresses:
        channel, ident = subject.addresses[0]
        return Address(channel, ident)
    return Address("sms", subject.phone) if subject.phone else None


_ROOTS = ("event", "customer", "journey", "store")


def needed(programs: Iterable[Any]) -> dict[str, frozenset[str] | None]:
    """What of the context these CEL programs read: root → its fields, or None for the whole root.

    Converting the context to CEL values costs ~1 µs a value, so the shared context of an event
    carries only what its playbooks' conditions name. A root used other than as `root.field`
    (`event["total"]`, a macro over `customer`, a string that mentions it) is passed whole.
    """
    out: dict[str, set[str] | None] = {}
    for program in programs:
        source = program.source
        for root in set(program.variables()) & set(_ROOTS):
            fields = re.findall(rf"(?<![\w.]){root}\.([A-Za-z_]\w*)", source)
            if len(fields) != len(re.findall(rf"(?<![\w.]){root}\b", source)):
                out[root] = None
            elif root not in out:
                out[root] = set(fields)
            elif (known := out[root]) is not None:
                known.update(fields)
    return {root: None if fields is None else frozenset(fields) for root, fields in out.items()}


def subject_key(customer_id: int | None, person_id: int | None) -> str | None:
    if customer_id is not None:
        return f"c{customer_id}"
    return f"p{person_id}" if person_id is not None else None


class _Paused(Exception):
    pass


class _Batch:
    """What one pass of `run_due` reads once and writes once: people, events, step results, positions."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.subjects: dict[str, Subject] = {}
        self.events: dict[int, Event] = {}
        self.steps: list[dict[str, Any]] = []
        self.moves: dict[int, dict[str, Any]] = {}
        """Run id → its position after the batch (the last move of a run is the one that counts)."""
        self.awards: list[LedgerEntry] = []
        self.sent: dict[str, int] = {}
        self.sent_before: dict[str, int] = {}
        self.customers: int | None = None

    def done(self, run: Run, *, step: int, kind: str, result: str, detail: str | None = None,
             outbox_id: int | None = None, next_step: int, status: str, wake_at: datetime | None,
             stop_reason: str | None = None, award: LedgerEntry | None = None) -> None:
        """A step's result and the run's next position (written with the batch)."""
        if award is not None:
            self.awards.append(award)
        self.steps.append(step_row(run.id, step, kind, result, detail, outbox_id, None, self.now))
        self.moves[run.id] = move_row(run.id, next_step, status, wake_at, 0, None, stop_reason,
                                      self.now if status not in OPEN else None, self.now)
        run.step, run.status, run.wake_at, run.stop_reason = next_step, status, wake_at, stop_reason

    def failed(self, run: Run, *, step: int, kind: str, error: str, retry_at: datetime | None) -> None:
        """A failed attempt: kept with its error; the run retries at `retry_at`, or fails when None."""
        attempts = run.attempts + 1
        status = FAILED if retry_at is None else run.status
        self.steps.append(step_row(run.id, step, kind, "error", None, None, error[:2000], self.now))
        self.moves[run.id] = move_row(run.id, step, status, retry_at, attempts, error[:2000], None,
                                      self.now if status == FAILED else None, self.now)
        run.attempts, run.status, run.wake_at, run.error = attempts, status, retry_at, error


class PlaybookEngine:
    def __init__(self, db: Database, clock: Clock, playbooks: Sequence[Playbook], messenger: Messenger,
                 settings: EngineSettings | None = None, *, consumer: str = "playbooks") -> None:
        self.db = db
        self.clock = clock
        self.messenger = messenger
        self.settings = settings or EngineSettings()
        self.consumer = consumer
        self.repo = PlaybookRepo(db)
        self.log = EventLog(db)
        self.set_playbooks(playbooks)
        self.evaluations = 0
        self.errors = 0
        self.on_pause: list[Callable[[str, str], Awaitable[None]]] = []
        # The hourly guard counts sends, then sends: one playbook's sends go one at a time so two
        # runs cannot both read the count below the limit.
        self._send_locks: dict[str, asyncio.Lock] = {}

    def set_playbooks(self, playbooks: Sequence[Playbook]) -> None:
        self.playbooks = [p for p in playbooks if p.spec.enabled]
        self.by_name = {p.name: p for p in self.playbooks}
        self.by_trigger: dict[str, list[Playbook]] = {}
        for p in self.playbooks:
            self.by_trigger.setdefault(p.trigger, []).append(p)
        self.stoppers = {reason: [p.name for p in self.playbooks if reason in p.stop_reasons]
                         for reason in set(STOP_EVENTS.values())}
        self.needs = {trigger: needed([p.condition for p in found]) for trigger, found in self.by_trigger.items()}

    # -- events → runs -----------------------------------------------------------------------

    async def consume(self, limit: int = 1000) -> int:
        """Evaluate the next batch of events; the number read (0: caught up)."""
        batch = await self.log.read(self.consumer, limit)
        if not batch:
            return 0
        await self.take(batch)
        return len(batch)

    async def take(self, batch: Sequence[Event]) -> None:
        """Evaluate a batch: one subject read for all its people, one transaction for its runs, stops and cursor."""
        now = self.clock.now()
        wanted = [e for e in batch if e.type in self.by_trigger or e.type in STOP_EVENTS]
        cids = {e.customer_id for e in wanted if e.customer_id is not None}
        pids = {e.person_id for e in wanted if e.person_id is not None}
        subjects = await self.repo.subjects(cids, pids) if cids or pids else {}
        new: list[NewRun] = []
        stops: list[tuple[Event, str, Sequence[str]]] = []
        for e in batch:
            candidates = self.by_trigger.get(e.type, ())
            if e.type == SCHEDULE:
                for pb in candidates:
                    if e.payload.get("playbook") == pb.name:
                        new.extend(await self._fan_out(pb, e, now))
            elif candidates:
                new.extend(self._evaluate_all(candidates, e, subjects, now))
            reason = STOP_EVENTS.get(e.type)
            if reason and self.stoppers.get(reason):
                found = subjects.get(f"p{e.person_id}") if e.customer_id is None and e.person_id else None
                if found is not None and found.customer_id is not None:  # a reply from a person with a CRM record
                    e = Event(e.id, e.type, e.person_id, found.customer_id, e.payload, e.source_id, e.occurred_at,
                              e.recorded_at)
                stops.append((e, reason, self.stoppers[reason]))
        if any(self.by_name[r.playbook].steps[0].kind in ("wait", "wait_until") for r in new):
            new = self._starting_waits(new, subjects, await self.repo.paused(), now)
        await self.repo.take(self.consumer, batch[-1].id, new, stops, now)

    def _evaluate_all(self, playbooks: Sequence[Playbook], e: Event, subjects: dict[str, Subject],
                      now: datetime) -> list[NewRun]:
        """Every playbook on the event's trigger against ONE context of the event and its person.

        The context is converted to CEL values once (`cel.Context`) and shared by the playbooks'
        programs: converting a context dict is most of what a CEL evaluation costs (~50 µs of ~60).
        """
        key = subject_key(e.customer_id, e.person_id)
        if key is None:
            return []
        subject = subjects.get(key)
        cid = e.customer_id if e.customer_id is not None else (subject.customer_id if subject else None)
        pid = e.person_id if e.person_id is not None else (subject.person_id if subject else None)
        if e.customer_id is not None and subject is not None:
            pid = subject.person_id  # the customer's own person (a receipt's event names the budtender who sent it)
        key = subject_key(cid, pid) or key
        context = {"event": event_context(e.type, e.payload, e.occurred_at, e.id),
                   "customer": customer_context(subject, now), "journey": Journey(now).context(now),
                   "store": {"name": (subject.store_name if subject else None) or self.settings.store_name}}
        needs = self.needs.get(e.type)
        if needs is not None:
            context = {root: whole if (fields := needs[root]) is None else {k: whole[k] for k in fields if k in whole}
                       for root, whole in context.items() if root in needs}
        shared: Any = context
        if len(playbooks) > 1:
            try:
                shared = cel.Context(context)
            except Exception:  # a value CEL cannot hold: each program meets (and reports) it on its own
                shared = context
        out = []
        for pb in playbooks:
            self.evaluations += 1
            try:
                matched = bool(pb.condition.execute(shared if shared is not context else dict(context)))
            except Exception as exc:  # a condition that fails on this event (a missing field): not eligible
                self.errors += 1
                log.warning("playbook condition failed playbook=%s event=%s: %s", pb.name, e.id, exc)
                continue
            if matched:
                out.append(NewRun(pb.name, e.id, key, pid, cid, held_out(key, pb.name, pb.spec.holdout), now))
        return out

    def _evaluate(self, pb: Playbook, e: Event, subjects: dict[str, Subject], now: datetime) -> NewRun | None:
        found = self._evaluate_all([pb], e, subjects, now)
        return found[0] if found else None

    async def _fan_out(self, pb: Playbook, e: Event, now: datetime) -> list[NewRun]:
        ids = await self.repo.customer_ids()
        subjects = await self.repo.subjects(ids, [])
        out = []
        for cid in ids:
            fake = Event(e.id, e.type, subjects[f"c{cid}"].person_id if f"c{cid}" in subjects else None, cid,
                         e.payload, e.source_id, e.occurred_at, e.recorded_at)
            run = self._evaluate(pb, fake, subjects, now)
            if run is not None:
                out.append(run)
        return out

    # -- runs → steps ------------------------------------------------------------------------

    async def run_due(self, limit: int = 200) -> int:
        """Execute every run whose time has come; the number of runs advanced.

        One pass is a batch: the runs are claimed in one transaction, their people and events read
        in one query each, their steps executed (sends go to the messenger as they happen), and
        every step's result and each run's new position written in ONE transaction at the end. A
        crash before that write leaves the runs claimed: after the lease they run again, and the
        outbox keys (`…playbook:<run>:<step>`) and ledger keys make the repeat send and award
        nothing twice.
        """
        now = self.clock.now()
        paused = await self.repo.paused()
        due = await self.repo.due(now, limit, exclude=paused)
        if not due:
            return 0
        won = await self.repo.claim_many(due, self.settings.lease, now)
        if not won:
            return 0  # other workers took them
        await self._advance_all(won)
        return len(won)

    async def drain(self, rounds: int = 1000) -> None:
        """Consume every stored event and run every due step (tests, replay, the live loop)."""
        for _ in range(rounds):
            read = await self.consume()
            ran = await self.run_due()
            if not read and not ran:
                return

    async def advance(self, run: Run) -> None:
        """Execute a claimed run's steps until a wait, the end or a failure (a batch of one)."""
        await self._advance_all([run])

    async def _advance_all(self, runs: Sequence[Run]) -> None:
        sending = {r.playbook for r in runs if (pb := self.by_name.get(r.playbook)) is not None
                   and any(step.kind == "send" for step in pb.steps)}
        async with self.repo.turns(sending):  # the hourly guard's count holds across workers
            batch = _Batch(self.clock.now())
            batch.subjects = await self.repo.subjects({r.customer_id for r in runs if r.customer_id is not None},
                                                      {r.person_id for r in runs if r.person_id is not None})
            batch.events = await self.log.get_many({r.event_id for r in runs})
            for start in range(0, len(runs), self.settings.concurrency):  # concurrent sends share commits
                await asyncio.gather(*(self._advance(r, batch)
                                       for r in runs[start:start + self.settings.concurrency]))
            await self.repo.record(batch.steps, list(batch.moves.values()), batch.awards)

    async def _advance(self, run: Run, batch: _Batch) -> None:
        pb = self.by_name.get(run.playbook)
        now = batch.now
        if pb is None:
            batch.done(run, step=run.step, kind="stop", result="stopped", detail="playbook removed or disabled",
                       next_step=run.step, status=STOPPED, wake_at=None, stop_reason="playbook removed")
            return
        subject = batch.subjects.get(run.subject)
        event = batch.events.get(run.event_id)
        while run.status in OPEN and run.step < len(pb.steps):
            step = pb.steps[run.step]
            try:
                await self._step(pb, run, step, subject, event, batch)
            except _Paused:
                return
            except Exception as exc:
                log.exception("playbook step failed playbook=%s run=%s step=%s", pb.name, run.id, step.index)
                retry = None
                if run.attempts + 1 < self.settings.max_attempts:
                    delay = min(self.settings.retry_cap, self.settings.retry_base * 2 ** run.attempts)
                    retry = now + timedelta(seconds=delay)
                batch.failed(run, step=step.index, kind=step.kind, error=f"{type(exc).__name__}: {exc}",
                             retry_at=retry)
                return
            if run.status == WAITING and run.wake_at is not None and run.wake_at > now:
                return

    def _context(self, pb: Playbook, run: Run, subject: Subject | None, event: Event | None,
                 journey: Journey) -> dict[str, Any]:
        now = self.clock.now()
        ev = event_context(event.type, event.payload, event.occurred_at, event.id) if event else {}
        return {"event": ev, "customer": customer_context(subject, now), "journey": journey.context(now),
                "store": {"name": (subject.store_name if subject else None) or self.settings.store_name}}

    async def _step(self, pb: Playbook, run: Run, step: Step, subject: Subject | None, event: Event | None,
                    batch: _Batch) -> None:
        now = batch.now
        last = len(pb.steps)
        nxt = step.index + 1
        kind = step.kind

        def done(result: str, detail: str | None = None, *, next_step: int = nxt, st: str | None = None,
                 wake: datetime | None = now, outbox_id: int | None = None, award: LedgerEntry | None = None) -> None:
            final = st or (DONE if next_step >= last else run.status)
            batch.done(run, step=step.index, kind=kind, result=result, detail=detail, outbox_id=outbox_id,
                       next_step=next_step, status=final, wake_at=None if final not in OPEN else wake, award=award)

        if kind in ("wait", "wait_until"):
            wait = self._wait(pb, step, subject, now)
            done("waiting", wait.detail, st=wait.status, wake=wait.wake_at)
            return
        if kind == "stop":
            done("stopped", next_step=last, st=DONE)
            return
        journey = Journey(run.started_at, held_out=run.held_out)
        if kind == "branch" or (kind in ("send", "notify") and "journey" in (step.spec.send or step.spec.notify
                                                                              or "")):
            visits, revenue, replied = await self.repo.since_start(run)
            journey = Journey(run.started_at, visits, revenue, replied, run.held_out)
        context = self._context(pb, run, subject, event, journey)
        if kind == "branch":
            taken = bool(step.condition.execute(context))
            target = step.then_index if taken else step.else_index
            assert target is not None
            label = "end" if target >= last else f"step {target}"
            done(f"{'then' if taken else 'else'} → {label}", next_step=target)
            return
        if kind == "notify":
            body = render(step.template, context)
            await self.messenger.notify(f"[{pb.name}] {body}", f"playbook-notify:{run.id}:{step.index}", now)
            done("notified", body)
            return
        if run.held_out:
            done(HELD_OUT, "control group: nothing sent" if kind == "send" else "control group: no award")
            return
        if kind == "award_points":
            if subject is None or subject.customer_id is None:
                done("skipped", "no CRM record to award")
                return
            points = step.spec.award_points or 0
            entry = LedgerEntry(f"playbook:{run.id}:{step.index}", points, "playbook", now,
                                customer_id=subject.customer_id, note=pb.name[:300])
            done("awarded", f"{points} points", award=entry)
            return
        # send
        address = address_of(subject)
        if address is None:
            done("skipped", "no address to send to")
            return
        async with self._send_locks.setdefault(pb.name, asyncio.Lock()):
            await self._guard(pb, now, batch)
            body = render(step.template, context)
            key = f"{MARKETING_KEY if pb.spec.marketing else ''}playbook:{run.id}:{step.index}"
            outbox_id = await self.messenger.send(address, body, key, subject.person_id if subject else None, now,
                                                  pb.name)
            done(SENT, body, outbox_id=outbox_id)
            batch.sent[pb.name] = batch.sent.get(pb.name, 0) + 1

    def _wait(self, pb: Playbook, step: Step, subject: Subject | None, now: datetime) -> FirstWait:
        """A wait step's result: until when (a delay, or the next local time of day), and the run's status."""
        if step.delay is not None:
            wake = now + step.delay
        else:
            assert step.at is not None
            tz = (subject.timezone if subject else None) or self.settings.default_timezone
            wake = next_local(now, step.at, tz)
        last = step.index + 1 >= len(pb.steps)
        return FirstWait(step.kind, f"until {wake.isoformat(timespec='minutes')}", DONE if last else WAITING,
                         None if last else wake)

    def _starting_waits(self, new: list[NewRun], subjects: dict[str, Subject], paused: Iterable[str],
                        now: datetime) -> list[NewRun]:
        """New runs whose first step is a wait, with it done (what `run_due` would do next, at once)."""
        out = []
        for run in new:
            pb = self.by_name[run.playbook]
            first = pb.steps[0]
            if (first.kind not in ("wait", "wait_until") or run.playbook in paused
                    or (first.kind == "wait_until" and run.subject not in subjects)):  # run_due reads the zone
                out.append(run)
                continue
            out.append(dataclasses.replace(run, first_wait=self._wait(pb, first, subjects.get(run.subject), now)))
        return out

    async def _guard(self, pb: Playbook, now: datetime, batch: _Batch) -> None:
        """Pause a playbook about to message more than its share of all customers within an hour.

        The count is the stored sends of the last hour (read once per batch) plus this batch's own,
        not yet written: the same number a read after each send would give.
        """
        if pb.name not in batch.sent_before:
            batch.sent_before[pb.name] = await self.repo.sent_since(pb.name, now - timedelta(hours=1))
        if batch.customers is None:
            batch.customers = await self.repo.customer_count()
        sent = batch.sent_before[pb.name] + batch.sent.get(pb.name, 0)
        total = batch.customers
        limit = max(self.settings.guard_floor, int(pb.spec.max_share_per_hour * total))
        if sent < limit:
            return
        reason = (f"would message more than {pb.spec.max_share_per_hour:.0%} of {total} customers in an hour "
                  f"({sent} sent): paused; `python main.py playbooks resume {pb.name}` to go on")
        if await self.repo.pause(pb.name, reason, now):
            log.warning("playbook paused playbook=%s: %s", pb.name, reason)
            await self.messenger.notify(f"Playbook {pb.name} {reason}", f"playbook-paused:{pb.name}:{now:%Y%m%d%H}",
                                        now)
            for hook in self.on_pause:
                await hook(pb.name, reason)
        raise _Paused

    # -- state and schedule triggers -------------------------------------------------------------

    async def detect_overdue(self) -> int:
        """Append `visit.overdue` for each customer whose own visit rhythm just broke (once per last visit)."""
        now = self.clock.now()
        rules = self.settings.rhythm
        found = []
        for cid, pid, visits, first, last in await self.repo.overdue_candidates(
                now - timedelta(days=rules.min_days), rules.min_visits):
            payload = overdue(visits, first, last, now, rules)
            if payload is not None:
                found.append(NewEvent(VISIT_OVERDUE, f"{cid}:{last.isoformat()}", now, pid, cid, payload))
        await self.log.append_many(found, now)
        return len(found)


def names(playbooks: Iterable[Playbook]) -> list[str]:
    return [p.name for p in playbooks]
