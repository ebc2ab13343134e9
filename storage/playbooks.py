"""Playbook executions: one run per (playbook, triggering event, person), its steps, pauses; the reads they need.

A run is a durable state machine: `step` is the next step to execute and `wake_at` when. A wait
is nothing but a later `wake_at`, so a restart neither loses nor repeats it: a run is claimed by
moving its `wake_at` forward only if it still has the value that was read (one winner), and each
step's result is written with the step pointer in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.customers import customers, stores
from storage.db import Database, metadata
from storage.events import REPLY_RECEIVED, Event, advance_in, events
from storage.loyalty import LedgerEntry, LoyaltyRepo, loyalty_ledger
from storage.outbox import outbox
from storage.people import addresses, persons
from storage.prepared import Prepared
from storage.sales import transactions
from storage.types import UTCDateTime

playbook_runs = sa.Table(
    "playbook_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("playbook", sa.String(100), nullable=False),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("subject", sa.String(40), nullable=False),
    sa.Column("person_id", sa.Integer),
    sa.Column("customer_id", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("held_out", sa.Boolean, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("wake_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("stop_reason", sa.String(100)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.UniqueConstraint("playbook", "event_id", "subject", name="uq_playbook_runs_playbook"),
    sa.Index("ix_playbook_runs_due", "status", "wake_at"),
    sa.Index("ix_playbook_runs_customer", "customer_id", "status"),
    sa.Index("ix_playbook_runs_person", "person_id", "status"),
)
"""`subject` is `c<customer id>` or `p<person id>`: the person the journey is about."""

playbook_steps = sa.Table(
    "playbook_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("result", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("outbox_id", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "step", name="uq_playbook_steps_run_id"),
    sa.Index("ix_playbook_steps_at", "at"),
)

playbook_pauses = sa.Table(
    "playbook_pauses",
    metadata,
    sa.Column("playbook", sa.String(100), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("paused_at", UTCDateTime, nullable=False),
)

sa.Index("ix_outbox_recipient_sent", outbox.c.channel, outbox.c.address, outbox.c.sent_at)
"""Added by this area's migration: the frequency cap reads a recipient's recent sends."""

ACTIVE, WAITING, DONE, STOPPED, FAILED = "active", "waiting", "done", "stopped", "failed"
OPEN = (ACTIVE, WAITING)
SENT, HELD_OUT = "sent", "held_out"
MARKETING_KEY = "marketing:"
"""Outbox idempotency keys of marketing messages start with this: the frequency cap counts them."""


@dataclass(frozen=True, slots=True)
class NewRun:
    playbook: str
    event_id: int
    subject: str
    person_id: int | None
    customer_id: int | None
    held_out: bool
    started_at: datetime
    first_wait: FirstWait | None = None
    """A journey that opens with a wait has it done as it starts (see `PlaybookRepo.take`)."""


@dataclass(frozen=True, slots=True)
class FirstWait:
    """Step 0 of a new run, a wait, as `run_due` would have recorded it at the run's start."""

    kind: str
    detail: str
    status: str
    wake_at: datetime | None


@dataclass(slots=True)
class Run:
    id: int
    playbook: str
    event_id: int
    subject: str
    person_id: int | None
    customer_id: int | None
    status: str
    held_out: bool
    step: int
    wake_at: datetime | None
    attempts: int
    error: str | None
    stop_reason: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: int
    step: int
    kind: str
    result: str
    detail: str | None
    outbox_id: int | None
    attempts: int
    error: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Subject:
    """What conditions and templates may read about a customer (a plain record; coaching shapes it)."""

    customer_id: int | None
    person_id: int | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    vip_tier: str | None
    rewards_member: bool
    visits: int
    lifetime_spend: Decimal
    last_visit_at: datetime | None
    first_visit_at: datetime | None
    points: int
    favourite_categories: list[str]
    store_name: str | None
    timezone: str | None
    """The person's zone when they have one, else their store's."""
    person_name: str | None
    addresses: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One run, as the ROI report reads it."""

    playbook: str
    held_out: bool
    customer_id: int | None
    started_at: datetime
    sent: int
    replied: bool
    revenue: Decimal
    converted: bool
    after_send_revenue: Decimal
    """Revenue in the window after a message went out: what last-touch attribution would claim."""


def _run(r: Any) -> Run:
    return Run(int(r.id), r.playbook, int(r.event_id), r.subject, r.person_id, r.customer_id, r.status,
               bool(r.held_out), int(r.step), r.wake_at, int(r.attempts), r.error, r.stop_reason, r.started_at,
               r.finished_at)


_CREATE = Prepared.per_dialect(
    lambda insert: insert(playbook_runs).on_conflict_do_nothing(index_elements=["playbook", "event_id", "subject"])
)
_CREATE_RETURNING = Prepared.per_dialect(
    lambda insert: insert(playbook_runs).on_conflict_do_nothing(index_elements=["playbook", "event_id", "subject"])
    .returning(playbook_runs.c.id, playbook_runs.c.playbook, playbook_runs.c.event_id, playbook_runs.c.subject)
)
_STEP_ONCE = Prepared.per_dialect(
    lambda insert: insert(playbook_steps).on_conflict_do_nothing(index_elements=["run_id", "step"])
)
_IS_OPEN = sa.or_(*(playbook_runs.c.status == s for s in OPEN))
"""`status IN (OPEN)` as plain bound values: a literal IN list is re-expanded on every execution."""
_CLAIM = Prepared(
    playbook_runs.update()
    .where(playbook_runs.c.id == sa.bindparam("r_id"), playbook_runs.c.wake_at == sa.bindparam("r_seen"), _IS_OPEN)
    .values(wake_at=sa.bindparam("r_lease"), updated_at=sa.bindparam("r_now"))
)
_STEP = Prepared.per_dialect(
    lambda insert: (stmt := insert(playbook_steps)).on_conflict_do_update(
        index_elements=["run_id", "step"],
        set_={"result": stmt.excluded.result, "detail": stmt.excluded.detail, "outbox_id": stmt.excluded.outbox_id,
              "attempts": playbook_steps.c.attempts + 1, "error": stmt.excluded.error, "at": stmt.excluded.at},
    )
)
_STOP = Prepared(
    playbook_runs.update()
    .where(playbook_runs.c.id == sa.bindparam("r_id"), _IS_OPEN)
    .values(status=STOPPED, stop_reason=sa.bindparam("r_reason"), wake_at=None, finished_at=sa.bindparam("r_now"),
            updated_at=sa.bindparam("r_now"))
)
_MOVE = Prepared(
    playbook_runs.update().where(playbook_runs.c.id == sa.bindparam("r_id")).values(
        step=sa.bindparam("r_step"), status=sa.bindparam("r_status"), wake_at=sa.bindparam("r_wake"),
        attempts=sa.bindparam("r_attempts"), error=sa.bindparam("r_error"),
        stop_reason=sa.bindparam("r_stop"), finished_at=sa.bindparam("r_finished"),
        updated_at=sa.bindparam("r_now"))
)

_DUE_QUERY = (sa.select(playbook_runs)
              .where(_IS_OPEN, playbook_runs.c.wake_at <= sa.bindparam("now", type_=UTCDateTime))
              .order_by(playbook_runs.c.wake_at, playbook_runs.c.id).limit(sa.bindparam("limit")))
_DUE = Prepared(_DUE_QUERY)
_DUE_EXCEPT = Prepared(_DUE_QUERY.where(playbook_runs.c.playbook.not_in(sa.bindparam("skip", expanding=True))))
_NEXT_WAKE = Prepared(sa.select(sa.func.min(playbook_runs.c.wake_at)).where(_IS_OPEN))
_SENT_SINCE = Prepared(
    sa.select(sa.func.count()).select_from(playbook_steps)
    .where(playbook_steps.c.result == SENT, playbook_steps.c.at >= sa.bindparam("since", type_=UTCDateTime),
           sa.exists().where(playbook_runs.c.id == playbook_steps.c.run_id,
                             playbook_runs.c.playbook == sa.bindparam("playbook")))
)
"""Driven by the steps of the last hour (their `at` index), not by every run the playbook ever had."""
_PAUSED = Prepared(sa.select(playbook_pauses.c.playbook, playbook_pauses.c.reason))
_CUSTOMER_COUNT = Prepared(sa.select(sa.func.count()).select_from(customers))
_POINTS_OF = (sa.select(sa.func.sum(loyalty_ledger.c.delta)).where(loyalty_ledger.c.customer_id == customers.c.id)
              .correlate(customers).scalar_subquery())
_FIRST_VISIT_OF = (sa.select(sa.func.min(transactions.c.occurred_at))
                   .where(transactions.c.customer_id == customers.c.id).correlate(customers).scalar_subquery())
_SUBJECT = (sa.select(customers.c.id, customers.c.person_id, customers.c.first_name, customers.c.last_name,
                      customers.c.phone, customers.c.vip_tier, customers.c.rewards_member, customers.c.visits,
                      customers.c.lifetime_spend, customers.c.last_visit_at, customers.c.favourite_categories,
                      stores.c.name.label("store_name"), stores.c.timezone.label("store_tz"),
                      _POINTS_OF.label("points"), _FIRST_VISIT_OF.label("first_visit_at"))
            .select_from(customers.outerjoin(stores, stores.c.id == customers.c.store_id)))
"""A customer with their store, points balance and first visit: one row per subject (each an index lookup)."""
_SUBJECTS_BY_ID = Prepared(_SUBJECT.where(customers.c.id.in_(sa.bindparam("ids", expanding=True))))
_SUBJECTS_BY_PERSON = Prepared(_SUBJECT.where(customers.c.person_id.in_(sa.bindparam("ids", expanding=True))))
_PEOPLE = Prepared(sa.select(persons.c.id, persons.c.name, persons.c.timezone)
                   .where(persons.c.id.in_(sa.bindparam("ids", expanding=True))))
_ADDRESSES = Prepared(sa.select(addresses.c.person_id, addresses.c.channel, addresses.c.address)
                      .where(addresses.c.person_id.in_(sa.bindparam("ids", expanding=True))).order_by(addresses.c.id))
_OPEN_RUN = sa.select(playbook_runs.c.id, playbook_runs.c.customer_id, playbook_runs.c.person_id,
                      playbook_runs.c.playbook, playbook_runs.c.event_id, playbook_runs.c.started_at).where(
    _IS_OPEN, playbook_runs.c.playbook.in_(sa.bindparam("names", expanding=True)))
_OPEN_OF_CUSTOMERS = Prepared(_OPEN_RUN.where(playbook_runs.c.customer_id.in_(sa.bindparam("ids", expanding=True))))
_OPEN_OF_PERSONS = Prepared(_OPEN_RUN.where(playbook_runs.c.person_id.in_(sa.bindparam("ids", expanding=True))))
_CHUNK = 2000
"""Ids per IN list: under SQLite's and asyncpg's parameter limits whatever the batch."""


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i:i + _CHUNK]) for i in range(0, len(ids), _CHUNK)]


async def _stop_in(conn: AsyncConnection, stops: Sequence[tuple[Event, str, Sequence[str]]], now: datetime) -> None:
    """Stop the open runs a batch's stop events end: one read of the candidates, one executemany.

    A run is stopped by the first event of the batch (in log order) about its customer or person,
    listed by its playbook's stop-when, from another event, that occurred at or after its start.
    """
    names = sorted({n for _, _, found in stops for n in found})
    cids = sorted({e.customer_id for e, _, found in stops if found and e.customer_id is not None})
    pids = sorted({e.person_id for e, _, found in stops if found and e.person_id is not None})
    if not names or not (cids or pids):
        return
    found_rows: dict[int, Any] = {}
    for stmt, wanted in ((_OPEN_OF_CUSTOMERS, cids), (_OPEN_OF_PERSONS, pids)):
        for chunk in _chunks(wanted):
            for row in await stmt.all(conn, {"ids": chunk, "names": names}):
                found_rows[row.id] = row
    if not found_rows:
        return
    rows = [found_rows[i] for i in sorted(found_rows)]
    by_customer: dict[int, list[Any]] = {}
    by_person: dict[int, list[Any]] = {}
    for row in rows:
        if row.customer_id is not None:
            by_customer.setdefault(row.customer_id, []).append(row)
        if row.person_id is not None:
            by_person.setdefault(row.person_id, []).append(row)
    stopped: dict[int, dict[str, Any]] = {}
    for event, reason, found in stops:
        if not found:
            continue
        wanted = set(found)
        for row in (*by_customer.get(event.customer_id or -1, ()), *by_person.get(event.person_id or -1, ())):
            if (row.id not in stopped and row.playbook in wanted and row.event_id != event.id
                    and row.started_at <= event.occurred_at):
                stopped[row.id] = {"r_id": row.id, "r_reason": reason, "r_now": now}
    if stopped:
        await _STOP.execute_many(conn, list(stopped.values()))


def _new_row(r: NewRun, now: datetime) -> dict[str, Any]:
    wait = r.first_wait
    status, step, wake = (ACTIVE, 0, r.started_at) if wait is None else (wait.status, 1, wait.wake_at)
    return {"playbook": r.playbook, "event_id": r.event_id, "subject": r.subject, "person_id": r.person_id,
            "customer_id": r.customer_id, "status": status, "held_out": r.held_out, "step": step, "wake_at": wake,
            "attempts": 0, "error": None, "stop_reason": None, "started_at": r.started_at, "updated_at": now,
            "finished_at": None if status in OPEN else now}


def step_row(run_id: int, step: int, kind: str, result: str, detail: str | None, outbox_id: int | None,
             error: str | None, at: datetime) -> dict[str, Any]:
    """A step's result as `record` writes it (a repeat of the step counts one more attempt)."""
    return {"run_id": run_id, "step": step, "kind": kind, "result": result, "detail": detail, "outbox_id": outbox_id,
            "attempts": 1, "error": error, "at": at}


def move_row(run_id: int, step: int, status: str, wake_at: datetime | None, attempts: int, error: str | None,
             stop_reason: str | None, finished_at: datetime | None, now: datetime) -> dict[str, Any]:
    """A run's new position as `record` writes it."""
    return {"r_id": run_id, "r_step": step, "r_status": status, "r_wake": wake_at, "r_attempts": attempts,
            "r_error": error, "r_stop": stop_reason, "r_finished": finished_at, "r_now": now}


def _turn_key(playbook: str) -> int:
    """A playbook's advisory lock: 64 bits of a hash of its name, apart from Huddle's other locks."""
    digest = hashlib.sha256(b"huddle-playbook-turn\0" + playbook.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PlaybookRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.loyalty = LoyaltyRepo(db)

    # -- the consumer's transaction ---------------------------------------------------------

    async def take(self, consumer: str, position: int, new: Sequence[NewRun],
                   stops: Sequence[tuple[Event, str, Sequence[str]]], now: datetime) -> None:
        """Runs started and runs stopped by a batch of events, and the cursor past it: one transaction.

        A run whose first step is a wait (`first_wait`) is written already waiting, with that
        step's result: the same rows `run_due` would write a moment later, without a claim, a
        read and a write per run. A run that exists already (a redelivered event) is left alone.

        `stops`: (event, reason, playbooks whose stop-when lists the reason): open runs of those
        playbooks about the event's subject, started before it by another event, are stopped.
        """

        runs = [list(group) for _, group in itertools.groupby(new, key=lambda r: r.first_wait is None)]

        async def unit(conn: AsyncConnection) -> None:
            for group in runs:  # in the order given (ids follow the log), plain ones in one executemany
                if group[0].first_wait is None:
                    await _CREATE.execute_many(conn, [_new_row(r, now) for r in group])
                    continue
                # the ones inserted (not there from an earlier delivery) get their first step with them
                made = await _CREATE_RETURNING.each_many(conn, [_new_row(r, now) for r in group],
                                                         key=("playbook", "event_id", "subject"))
                await _STEP_ONCE.execute_many(conn, [
                    step_row(row.id, 0, r.first_wait.kind, "waiting", r.first_wait.detail, None, None, now)
                    for r, row in zip(group, made, strict=True) if row is not None and r.first_wait is not None])
            if stops:
                await _stop_in(conn, stops, now)
            await advance_in(conn, consumer, position, now)

        await self.db.run(unit)

    # -- timers and steps --------------------------------------------------------------------

    async def due(self, now: datetime, limit: int = 500, exclude: Iterable[str] = ()) -> list[Run]:
        skip = sorted(exclude)
        params: dict[str, Any] = {"now": now, "limit": limit}
        if skip:
            params["skip"] = skip
        rows = await self.db.query(lambda conn: (_DUE_EXCEPT if skip else _DUE).all(conn, params))
        return [_run(r) for r in rows]

    async def next_wake(self) -> datetime | None:
        row = await self.db.query(lambda conn: _NEXT_WAKE.first(conn))
        return None if row is None else row[0]

    async def claim(self, run: Run, lease: timedelta, now: datetime) -> bool:
        """Take a due run for `lease` (another worker, or a second pass, sees it not due); True if won."""
        until = now + lease

        async def unit(conn: AsyncConnection) -> bool:
            return await _CLAIM.execute(conn, {"r_id": run.id, "r_seen": run.wake_at, "r_lease": until,
                                               "r_now": now}) == 1

        won = await self.db.run(unit)
        if won:
            run.wake_at = until
        return won

    async def claim_many(self, runs: Sequence[Run], lease: timedelta, now: datetime) -> list[Run]:
        """`claim` for a batch of due runs in one transaction; the runs won (each compared with the
        `wake_at` that was read, so one winner per run whatever other workers do)."""
        until = now + lease

        async def unit(conn: AsyncConnection) -> list[Run]:
            return [r for r in runs if await _CLAIM.execute(
                conn, {"r_id": r.id, "r_seen": r.wake_at, "r_lease": until, "r_now": now}) == 1]

        won = await self.db.run(unit)
        for r in won:
            r.wake_at = until
        return won

    async def record(self, steps: Sequence[dict[str, Any]], moves: Sequence[dict[str, Any]],
                     awards: Sequence[LedgerEntry] = ()) -> None:
        """A batch of step results (`step_row`), run positions (`move_row`) and points awards: one
        transaction, one executemany each."""
        if not steps and not moves and not awards:
            return

        async def unit(conn: AsyncConnection) -> None:
            if awards:
                await self.loyalty.add_in(conn, list(awards))
            await _STEP.execute_many(conn, steps)
            await _MOVE.execute_many(conn, moves)

        await self.db.run(unit)

    async def step_done(self, run: Run, *, step: int, kind: str, result: str, detail: str | None = None,
                        outbox_id: int | None = None, error: str | None = None, next_step: int,
                        status: str, wake_at: datetime | None, now: datetime, stop_reason: str | None = None,
                        award: LedgerEntry | None = None) -> None:
        """A step's result and the run's next position (and a points award) in one transaction."""

        async def unit(conn: AsyncConnection) -> None:
            if award is not None:
                await self.loyalty.add_in(conn, [award])
            await _STEP.execute(conn, step_row(run.id, step, kind, result, detail, outbox_id, error, now))
            await _MOVE.execute(conn, move_row(run.id, next_step, status, wake_at, 0 if error is None else run.attempts,
                                               error, stop_reason, now if status not in OPEN else None, now))

        await self.db.run(unit)
        run.step, run.status, run.wake_at, run.stop_reason = next_step, status, wake_at, stop_reason

    async def step_failed(self, run: Run, *, step: int, kind: str, error: str, retry_at: datetime | None,
                          now: datetime) -> None:
        """A failed attempt: kept with its error; the run retries at `retry_at`, or fails when None."""
        attempts = run.attempts + 1
        status = FAILED if retry_at is None else run.status

        async def unit(conn: AsyncConnection) -> None:
            await _STEP.execute(conn, step_row(run.id, step, kind, "error", None, None, error[:2000], now))
            await _MOVE.execute(conn, move_row(run.id, step, status, retry_at, attempts, error[:2000], None,
                                               now if status == FAILED else None, now))

        await self.db.run(unit)
        run.attempts, run.status, run.wake_at, run.error = attempts, status, retry_at, error

    async def get(self, run_id: int) -> Run | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(playbook_runs).where(playbook_runs.c.id == run_id))).first()
        return None if row is None else _run(row)

    async def runs(self, playbook: str | None = None, limit: int = 50) -> list[tuple[Run, list[StepRecord]]]:
        query = sa.select(playbook_runs).order_by(playbook_runs.c.id.desc()).limit(limit)
        if playbook is not None:
            query = query.where(playbook_runs.c.playbook == playbook)
        async with self.db.read() as conn:
            found = [_run(r) for r in (await conn.execute(query)).all()]
            steps: dict[int, list[StepRecord]] = {}
            if found:
                rows = (await conn.execute(
                    sa.select(playbook_steps).where(playbook_steps.c.run_id.in_([r.id for r in found]))
                    .order_by(playbook_steps.c.run_id, playbook_steps.c.step))).all()
                for s in rows:
                    steps.setdefault(s.run_id, []).append(StepRecord(
                        s.run_id, s.step, s.kind, s.result, s.detail, s.outbox_id, s.attempts, s.error, s.at))
        return [(r, steps.get(r.id, [])) for r in reversed(found)]

    async def counts(self, since: datetime) -> dict[str, tuple[int, int]]:
        """Per playbook: (runs, messages sent since `since`)."""
        async with self.db.read() as conn:
            runs = dict((await conn.execute(sa.select(playbook_runs.c.playbook, sa.func.count())
                                            .group_by(playbook_runs.c.playbook))).all())
            sent = dict((await conn.execute(
                sa.select(playbook_runs.c.playbook, sa.func.count())
                .select_from(playbook_steps.join(playbook_runs, playbook_runs.c.id == playbook_steps.c.run_id))
                .where(playbook_steps.c.result == SENT, playbook_steps.c.at >= since)
                .group_by(playbook_runs.c.playbook))).all())
        return {name: (int(runs.get(name, 0)), int(sent.get(name, 0))) for name in {*runs, *sent}}

    async def sent_since(self, playbook: str, since: datetime) -> int:
        row = await self.db.query(lambda conn: _SENT_SINCE.first(conn, {"playbook": playbook, "since": since}))
        return int(row[0]) if row is not None else 0

    # -- pauses ------------------------------------------------------------------------------

    async def pause(self, playbook: str, reason: str, now: datetime) -> bool:
        """Pause a playbook; False when it was paused already."""

        async def unit(conn: AsyncConnection) -> bool:
            stmt = self.db.insert(playbook_pauses).values(playbook=playbook, reason=reason, paused_at=now)
            return (await conn.execute(stmt.on_conflict_do_nothing(index_elements=["playbook"]))).rowcount == 1

        return await self.db.run(unit)

    async def resume(self, playbook: str) -> bool:
        async def unit(conn: AsyncConnection) -> bool:
            deleted = await conn.execute(playbook_pauses.delete().where(playbook_pauses.c.playbook == playbook))
            return bool(deleted.rowcount)

        return await self.db.run(unit)

    @contextlib.asynccontextmanager
    async def turns(self, playbooks: Collection[str]) -> AsyncIterator[None]:
        """While the block runs, no other process runs a batch of these playbooks.

        The hourly guard counts the stored sends of the hour, then sends: two workers' batches of
        one playbook side by side would each count without the other's and overshoot by a batch
        each. On PostgreSQL each playbook's advisory lock is taken, in name order, in a transaction
        of its own that ends with the block (a dead process's connection lets go of it too). One
        process's sends of a playbook already go in turn, and SQLite has one process.
        """
        names = sorted(set(playbooks))
        if self.db.dialect != "postgresql" or not names:
            yield
            return
        async with self.db.engine.begin() as conn:
            for name in names:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _turn_key(name)})
            yield

    async def paused(self) -> dict[str, str]:
        return {r.playbook: r.reason for r in await self.db.query(lambda conn: _PAUSED.all(conn))}

    # -- what conditions read ---------------------------------------------------------------

    async def subjects(self, customer_ids: Iterable[int], person_ids: Iterable[int]) -> dict[str, Subject]:
        """`c<id>` / `p<id>` → the subject's record (a person with a CRM record is keyed by both).

        A handful of prepared statements for any number of people (IN lists of `_CHUNK`): a batch
        of events or runs reads its people at once, not one query per event.
        """
        cids, pids = sorted(set(customer_ids)), sorted(set(person_ids))
        out: dict[str, Subject] = {}
        async with self.db.read() as conn:
            found: dict[int, Any] = {}
            for stmt, wanted in ((_SUBJECTS_BY_ID, cids), (_SUBJECTS_BY_PERSON, pids)):
                for chunk in _chunks(wanted):
                    for r in await stmt.all(conn, {"ids": chunk}):
                        found[r.id] = r
            rows = list(found.values())
            all_pids = sorted({*pids, *(r.person_id for r in rows if r.person_id is not None)})
            people: dict[int, Any] = {}
            addrs: dict[int, list[tuple[str, str]]] = {}
            for chunk in _chunks(all_pids):
                people.update({r.id: r for r in await _PEOPLE.all(conn, {"ids": chunk})})
                for a in await _ADDRESSES.all(conn, {"ids": chunk}):
                    addrs.setdefault(a.person_id, []).append((a.channel, a.address))
        for r in rows:
            person = people.get(r.person_id) if r.person_id is not None else None
            first = r.first_visit_at
            subject = Subject(
                r.id, r.person_id, r.first_name, r.last_name, r.phone, r.vip_tier, bool(r.rewards_member),
                int(r.visits or 0), Decimal(str(r.lifetime_spend or 0)), r.last_visit_at, first,
                int(r.points or 0), list(r.favourite_categories or []), r.store_name,
                (person.timezone if person is not None else None) or r.store_tz,
                person.name if person is not None else None, addrs.get(r.person_id, []) if r.person_id else [])
            out[f"c{r.id}"] = subject
            if r.person_id is not None:
                out.setdefault(f"p{r.person_id}", subject)
        for pid in pids:
            if f"p{pid}" in out or pid not in people:
                continue
            p = people[pid]
            first_name = (p.name or "").split(" ")[0] or None
            out[f"p{pid}"] = Subject(None, pid, first_name, None, None, None, False, 0, Decimal("0"), None, None, 0,
                                     [], None, p.timezone, p.name, addrs.get(pid, []))
        return out

    async def since_start(self, run: Run) -> tuple[int, Decimal, bool]:
        """(visits, revenue, replied) of the run's subject since it started: what branches ask."""
        async with self.db.read() as conn:
            visits, revenue = 0, Decimal("0")
            if run.customer_id is not None:
                rows = (await conn.execute(
                    sa.select(transactions.c.total).where(
                        transactions.c.customer_id == run.customer_id, transactions.c.occurred_at > run.started_at,
                        transactions.c.status.in_(("completed", "pending"))))).all()
                visits, revenue = len(rows), sum((Decimal(str(r.total)) for r in rows), Decimal("0"))
            replied = False
            if run.person_id is not None:
                replied = (await conn.execute(sa.select(events.c.id).where(
                    events.c.person_id == run.person_id, events.c.type == REPLY_RECEIVED,
                    events.c.occurred_at > run.started_at).limit(1))).first() is not None
        return visits, revenue, replied

    async def customer_ids(self) -> list[int]:
        """Every customer with a phone (a scheduled playbook considers each)."""
        async with self.db.read() as conn:
            return [int(r[0]) for r in (await conn.execute(
                sa.select(customers.c.id).where(customers.c.phone.is_not(None)).order_by(customers.c.id))).all()]

    async def staff_sales(self, person_id: int, start: datetime, end: datetime) -> Decimal:
        """A staff member's counted sales in [start, end) (`report impact`)."""
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(transactions.c.total).where(
                transactions.c.budtender_person_id == person_id, transactions.c.occurred_at >= start,
                transactions.c.occurred_at < end, transactions.c.status.in_(("completed", "pending"))))).all()
        return sum((Decimal(str(r.total)) for r in rows), Decimal("0"))

    async def customer_count(self) -> int:
        row = await self.db.query(lambda conn: _CUSTOMER_COUNT.first(conn))
        return int(row[0]) if row is not None else 0

    async def overdue_candidates(self, last_before: datetime, min_visits: int) -> list[tuple[int, int | None, int,
                                                                                               datetime, datetime]]:
        """Customers with `min_visits`+ visits whose last visit is before `last_before`:
        (customer id, person id, visits, first visit, last visit)."""
        t = transactions.c
        firsts = (sa.select(t.customer_id, sa.func.min(t.occurred_at).label("first"))
                  .where(t.customer_id.is_not(None)).group_by(t.customer_id).subquery())
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(customers.c.id, customers.c.person_id, customers.c.visits, firsts.c.first,
                          customers.c.last_visit_at)
                .select_from(customers.join(firsts, firsts.c.customer_id == customers.c.id))
                .where(customers.c.visits >= min_visits, customers.c.last_visit_at < last_before))).all()
        return [(int(r.id), r.person_id, int(r.visits), r.first, r.last_visit_at) for r in rows
                if r.first is not None and r.last_visit_at is not None]

    # -- the frequency cap -------------------------------------------------------------------

    async def marketing_sent(self, channel: str, address: str, since: datetime) -> list[datetime]:
        """When marketing messages (keys `marketing:…`) went out to this address since `since`."""
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(outbox.c.sent_at).where(
                    outbox.c.channel == channel, outbox.c.address == address,
                    outbox.c.idempotency_key.like(MARKETING_KEY + "%"), outbox.c.sent_at >= since)
                .order_by(outbox.c.sent_at))).all()
        return [r.sent_at for r in rows]

    # -- the report --------------------------------------------------------------------------

    async def report_rows(self, window: timedelta, playbook: str | None = None, *, started_from: datetime | None = None,
                          started_before: datetime | None = None) -> list[ReportRow]:
        """Every run (of `playbook`, started in the given span) with what followed it within `window`:
        messages, replies, orders after it started."""
        r = playbook_runs.c
        chosen = []
        if playbook is not None:
            chosen.append(r.playbook == playbook)
        if started_from is not None:
            chosen.append(r.started_at >= started_from)
        if started_before is not None:
            chosen.append(r.started_at < started_before)
        async with self.db.read() as conn:
            runs = [_run(x) for x in (await conn.execute(sa.select(playbook_runs).where(*chosen))).all()]
            if not runs:
                return []
            sends: dict[int, list[datetime]] = {}
            for s in (await conn.execute(
                    sa.select(playbook_steps.c.run_id, playbook_steps.c.at)
                    .select_from(playbook_steps.join(playbook_runs, r.id == playbook_steps.c.run_id))
                    .where(playbook_steps.c.result == SENT, *chosen))).all():
                sends.setdefault(s.run_id, []).append(s.at)
            cids = sorted({x.customer_id for x in runs if x.customer_id is not None})
            orders: dict[int, list[tuple[datetime, Decimal]]] = {}
            if cids:
                for o in (await conn.execute(sa.select(transactions.c.customer_id, transactions.c.occurred_at,
                                                       transactions.c.total).where(
                        transactions.c.customer_id.in_(cids), transactions.c.status.in_(("completed", "pending"))))):
                    orders.setdefault(o.customer_id, []).append((o.occurred_at, Decimal(str(o.total))))
            pids = sorted({x.person_id for x in runs if x.person_id is not None})
            replies: dict[int, list[datetime]] = {}
            if pids:
                for e in (await conn.execute(sa.select(events.c.person_id, events.c.occurred_at).where(
                        events.c.person_id.in_(pids), events.c.type == REPLY_RECEIVED))):
                    replies.setdefault(e.person_id, []).append(e.occurred_at)
        out = []
        for x in runs:
            end = x.started_at + window
            mine = [(at, total) for at, total in orders.get(x.customer_id or -1, []) if x.started_at < at <= end]
            first_send = min(sends.get(x.id, []), default=None)
            after_send = sum((t for at, t in mine if first_send is not None and at > first_send), Decimal("0"))
            replied = any(x.started_at < at <= end for at in replies.get(x.person_id or -1, []))
            out.append(ReportRow(x.playbook, x.held_out, x.customer_id, x.started_at, len(sends.get(x.id, [])),
                                 replied, sum((t for _, t in mine), Decimal("0")), bool(mine), after_send))
        return out
