"""The durable outbox: every message is a row before it is a provider call.

Claiming is one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING, so several
workers on PostgreSQL never take the same row; SQLite serializes writers and ignores the clause.

Receipts (one row per provider id, e.g. per SMS part) are written when the provider accepts a
part (`record_receipt`), or at the latest when the send returns (`mark_sent`). A delivery report
whose provider id has no receipt yet is kept (`outbox_kept_reports`), never dropped, and applied
when that receipt is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.model import Address, Button, DeliveryReport, Outbound, OutboundKind, OutboundStatus
from storage.db import Database, metadata
from storage.prepared import Prepared, among
from storage.processes import dead_owner
from storage.types import UTCDateTime

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("address", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(300)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("buttons", sa.JSON),
    sa.Column("thread", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("person_id", sa.Integer),
    sa.Column("quiet_tz", sa.String(64)),
    sa.Column("compliance", sa.Boolean, nullable=False),
    sa.Column("resent", sa.Boolean, nullable=False),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("handed_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

receipts = sa.Table(
    "outbox_receipts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("provider_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

kept_reports = sa.Table(
    "outbox_kept_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("provider_id", sa.String(200), nullable=False),
    sa.Column("address", sa.String(200)),
    sa.Column("delivered", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("reported_at", UTCDateTime),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Index("ix_outbox_kept_reports_lookup", "channel", "provider_id"),
)
"""Delivery reports that matched no receipt when they came: kept until one does, never lost."""


@dataclass(frozen=True, slots=True)
class KeptReport:
    channel: str
    provider_id: str
    address: str | None
    delivered: bool
    reason: str | None
    reported_at: datetime | None
    received_at: datetime


def row_to_outbound(row: Any) -> Outbound:
    return Outbound(
        address=Address(row.channel, row.address),
        body=row.body,
        kind=OutboundKind(row.kind),
        idempotency_key=row.idempotency_key,
        status=OutboundStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        buttons=[Button(b[0], b[1]) for b in (row.buttons or [])],
        thread=row.thread,
        reason=row.reason,
        person_id=row.person_id,
        quiet_tz=row.quiet_tz,
        compliance=bool(row.compliance),
        resent=bool(row.resent),
        created_at=row.created_at,
        sent_at=row.sent_at,
        id=row.id,
    )


_QUEUE = Prepared.per_dialect(
    lambda insert: insert(outbox)
    .on_conflict_do_nothing(index_elements=["channel", "idempotency_key"])
    .returning(*outbox.c)
)
_SET_BY_ID = Prepared(outbox.update().where(outbox.c.id == sa.bindparam("row_id")))
_ADD_RECEIPTS = Prepared(receipts.insert())


def _const(value: str) -> Any:
    """A status written into the SQL, not bound: PostgreSQL proves a partial index's predicate
    (`status IN ('queued', 'sending')`) only from constants, whichever plan it caches."""
    return sa.literal_column(f"'{value}'", sa.String)


_QUEUED, _SENDING = _const(OutboundStatus.QUEUED.value), _const(OutboundStatus.SENDING.value)


def _open(table: Any) -> Any:
    return table.c.status.in_([_QUEUED, _SENDING])


_CLAIM_CHANNEL = sa.bindparam("claim_channel", type_=sa.String)
_CLAIM_AT = sa.bindparam("claim_at", type_=UTCDateTime)
_CLAIM_WORKER = sa.bindparam("claim_worker", type_=sa.String)


# A row is claimable when it is due and nothing older to its recipient holds the turn: one
# recipient, one sender at a time, in order; it is the head of its recipient's lane. Two ways
# to find heads, so that a claim costs what it takes, not what is queued (issue 13: a NOT
# EXISTS per queued row read the whole queue whenever fewer heads were free than the claim
# asked for — 20 ms a claim, 8 ms of server CPU a message with 10,000 replies queued to 200
# people):
#
# - the front: the first `claim_scan` due rows (ix_outbox_queue), each one checked against the
#   head of its lane. Enough when heads are dense (many recipients).
# - the lanes: each recipient with open rows, one probe each (a skip scan of ix_outbox_open),
#   and their heads. For what the front did not fill (a few recipients with deep backlogs, or
#   heads beyond the front).
#
# Every step is an index probe the planner has no other way to make: statistics go stale the
# moment a burst fills the queue (a queue that filled since the last ANALYZE looks empty), and
# with a NOT EXISTS or a join it chose to match every candidate with every open row.
_head = outbox.alias("head")


def _lane_head(channel: Any, address: Any) -> Any:
    """The id of the lane's oldest row that holds the turn (due, or being sent by another
    process; what this process sends them already waits in its own lane, in order; a retry not
    yet due lets the next go) — NULL if none, or if it is being sent elsewhere."""
    h = _head.c
    return (
        sa.select(sa.case((h.status == _QUEUED, h.id)))
        .where(h.channel == channel, h.address == address, _open(_head), sa.or_(
            sa.and_(h.status == _QUEUED, h.next_attempt_at <= _CLAIM_AT),
            sa.and_(h.status == _SENDING, h.claimed_by != _CLAIM_WORKER),
        ))
        .order_by(h.channel, h.address, h.id)
        .limit(1)
        .scalar_subquery()
    )


_front, _candidate = outbox.alias("front"), outbox.alias("candidate")
_FRONT = (
    sa.select(_front.c.id)
    .where(_front.c.channel == _CLAIM_CHANNEL, _front.c.status == _QUEUED, _front.c.next_attempt_at <= _CLAIM_AT)
    .order_by(_front.c.channel, _front.c.next_attempt_at, _front.c.id)
    .limit(sa.bindparam("claim_scan"))
)


def _front_heads(dialect: str) -> Any:
    c = _candidate.c
    return sa.select(c.id).where(among(c.id, _FRONT, dialect), _lane_head(c.channel, c.address) == c.id)


_first_lane = outbox.alias("first_lane")
_lanes = (
    sa.select(sa.func.min(_first_lane.c.address).label("address"))
    .where(_first_lane.c.channel == _CLAIM_CHANNEL, _open(_first_lane))
    .cte("lanes", recursive=True)
)
_next_lane = outbox.alias("next_lane")
_lanes = _lanes.union_all(
    sa.select(
        sa.select(sa.func.min(_next_lane.c.address))
        .where(_next_lane.c.channel == _CLAIM_CHANNEL, _open(_next_lane), _next_lane.c.address > _lanes.c.address)
        .scalar_subquery()
    ).where(_lanes.c.address.is_not(None))
)
_LANE_HEADS = sa.select(_lane_head(_CLAIM_CHANNEL, _lanes.c.address)).where(
    _lanes.c.address.is_not(None),
    # A lane whose head the front just took waits for the next claim, as it would have.
    _lanes.c.address.not_in(sa.bindparam("claim_taken", expanding=True)),
)


def _claim(heads: Any, dialect: str, *extra: Any) -> Any:
    # The heads are locked by id (the primary key, whatever the statistics say) and once, in a
    # materialized CTE: an `IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` may be run again for
    # each row the UPDATE reads, and then claims more than n. A row locked after another claim
    # committed is read as that claim left it (`sending`), and is not taken.
    picked = (
        sa.select(outbox.c.id, outbox.c.status, outbox.c.next_attempt_at)
        .where(among(outbox.c.id, heads, dialect))
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(sa.bindparam("claim_limit"))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    still_due = sa.select(picked.c.id).where(picked.c.status == _QUEUED, picked.c.next_attempt_at <= _CLAIM_AT)
    return (
        outbox.update()
        .where(among(outbox.c.id, still_due, dialect))
        .values(
            status=OutboundStatus.SENDING.value,
            claimed_by=_CLAIM_WORKER,
            claimed_at=_CLAIM_AT,
            handed_at=None,
            attempts=outbox.c.attempts + 1,
            updated_at=_CLAIM_AT,
        )
        .returning(*outbox.c, *extra)
    )


_FRONT_SIZE = sa.select(sa.func.count()).select_from(_FRONT.subquery()).scalar_subquery().label("front_size")
"""Returned with what the front claimed: a front shorter than `claim_scan` held every due row, so
the lanes have nothing more to give (one statement fewer for most claims of a short queue)."""
_CLAIM_FRONT = Prepared.dialects(_claim(_front_heads("sqlite"), "sqlite", _FRONT_SIZE),
                                 postgresql=_claim(_front_heads("postgresql"), "postgresql", _FRONT_SIZE))
_CLAIM_LANES = Prepared.dialects(_claim(_LANE_HEADS, "sqlite"), postgresql=_claim(_LANE_HEADS, "postgresql"))
CLAIM_SCAN = 4
"""The front a claim reads first, in rows per row wanted (at least `CLAIM_SCAN_MIN`)."""
CLAIM_SCAN_MIN = 256
"""Enough to see past the heads other processes are busy with."""
_NEXT_DUE = Prepared(
    sa.select(sa.func.min(outbox.c.next_attempt_at).label("due")).where(
        outbox.c.channel == sa.bindparam("channel"), outbox.c.status == OutboundStatus.QUEUED.value
    )
)


class OutboxRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, msg: Outbound, now: datetime) -> tuple[Outbound, bool]:
        """Store a message; with a key already queued on that channel, return the first one.

        Concurrent messages share one multi-row insert (`Database.run_many`).
        """
        return await self.db.run_many(_enqueue_many, (msg, now))

    async def claim(self, channel: str, worker: str, now: datetime, limit: int) -> list[Outbound]:
        """Take up to `limit` due rows of `channel` for this worker (status → sending), oldest
        first, one per recipient unless this worker already sends to them; `SKIP LOCKED` lets
        workers claim side by side. The front of the queue first, then the recipients' lanes
        for what it did not fill (see `_CLAIM_FRONT`)."""

        async def unit(conn: AsyncConnection) -> list[Outbound]:
            params = {"claim_channel": channel, "claim_at": now, "claim_limit": limit, "claim_worker": worker,
                      "claim_scan": max(limit * CLAIM_SCAN, CLAIM_SCAN_MIN)}
            rows = await _CLAIM_FRONT.all(conn, params)
            if len(rows) < limit and (not rows or rows[0].front_size >= params["claim_scan"]):
                rows += await _CLAIM_LANES.all(conn, {**params, "claim_limit": limit - len(rows),
                                                      "claim_taken": sorted({r.address for r in rows})})
            return sorted((row_to_outbound(r) for r in rows), key=lambda m: m.id or 0)

        return await self.db.run(unit)

    async def next_due(self, channel: str) -> datetime | None:
        async def unit(conn: AsyncConnection) -> datetime | None:
            row = await _NEXT_DUE.first(conn, {"channel": channel})
            return row.due if row else None

        return await self.db.query(unit)

    async def _set(self, msg_id: int, now: datetime, **values: Any) -> None:
        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(outbox.update().where(outbox.c.id == msg_id).values(updated_at=now, **values))

        await self.db.run(unit)

    async def mark_sent(self, msg: Outbound, provider_ids: list[str], delivered: bool, now: datetime) -> None:
        """The send returned: record the receipts not yet recorded at acceptance, and the status.

        The status follows the receipts: reports that came while the send was under way (a part
        delivered, or failed, before the last one went out) are already on them. Concurrent sends
        share their statements (`Database.run_many`).
        """
        assert msg.id is not None
        await self.db.run_many(_mark_sent_many, (msg, provider_ids, delivered, now))

    async def hand_over(self, msg: Outbound, now: datetime) -> None:
        """This claimed message goes to the provider now: committed before the provider call, so a
        takeover after a crash flags as possibly repeated only what may have gone out (see
        `recover`). Concurrent sends share one statement (`Database.run_many`)."""
        assert msg.id is not None
        await self.db.run_many(_hand_over_many, {"row_id": msg.id, "handed_at": now})

    async def record_receipt(self, msg: Outbound, provider_id: str, now: datetime) -> bool:
        """The provider accepted (a part of) `msg` under `provider_id`: write its receipt now.

        Done before the next part is sent, so a report that comes back before the send returns
        finds its message. A report kept because it came even earlier is applied at once; returns
        whether one was. Writing the same receipt twice changes nothing. The message's status
        stays `sending` until the send returns (`mark_sent`).
        """
        assert msg.id is not None
        msg_id = msg.id

        async def unit(conn: AsyncConnection) -> bool:
            exists = (await conn.execute(sa.select(receipts.c.id).where(
                receipts.c.outbox_id == msg_id, receipts.c.provider_id == provider_id).limit(1))).first()
            if exists is not None:
                return False
            await conn.execute(receipts.insert().values(
                outbox_id=msg_id, channel=msg.address.channel, provider_id=provider_id,
                status=OutboundStatus.SENT.value, created_at=now, updated_at=now))
            return await _apply_kept(conn, msg, provider_id, now)

        return await self.db.run(unit)

    async def mark_retry(self, msg: Outbound, next_at: datetime, reason: str, now: datetime) -> None:
        assert msg.id is not None
        await self._set(
            msg.id, now, status=OutboundStatus.QUEUED.value, next_attempt_at=next_at, reason=reason, claimed_by=None
        )

    async def defer(self, msg: Outbound, until: datetime, reason: str, now: datetime) -> None:
        """Put back without counting an attempt (quiet hours)."""
        assert msg.id is not None
        await self._set(
            msg.id,
            now,
            status=OutboundStatus.QUEUED.value,
            next_attempt_at=until,
            reason=reason,
            claimed_by=None,
            attempts=max(0, msg.attempts - 1),
        )

    async def retry_now(self, ids: list[int], now: datetime) -> int:
        """Make queued rows due now (their channel is back); rows already due or no longer queued stay."""
        if not ids:
            return 0

        async def unit(conn: AsyncConnection) -> int:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids), outbox.c.status == OutboundStatus.QUEUED.value,
                       outbox.c.next_attempt_at > now)
                .values(next_attempt_at=now, updated_at=now)
            )
            return int(result.rowcount or 0)

        return await self.db.run(unit)

    async def release(self, ids: list[int], now: datetime) -> None:
        """Give back rows claimed but never handed to the provider (a clean shutdown)."""
        if not ids:
            return

        async def unit(conn: AsyncConnection) -> None:
            await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids), outbox.c.status == OutboundStatus.SENDING.value)
                .values(
                    status=OutboundStatus.QUEUED.value,
                    claimed_by=None,
                    handed_at=None,
                    attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0),
                    updated_at=now,
                )
            )

        await self.db.run(unit)

    async def mark_failed(self, msg: Outbound, reason: str, now: datetime, refused: bool = False) -> None:
        assert msg.id is not None
        status = OutboundStatus.REFUSED if refused else OutboundStatus.FAILED
        await self._set(msg.id, now, status=status.value, reason=reason[:2000], claimed_by=None)

    async def recover(self, worker: str, channels: list[str], now: datetime, *, anyone_else: bool = False) -> int:
        """Rows left `sending` by a process whose lease ran out go back to the queue; those it had
        handed to the provider (`hand_over`) are flagged possibly repeated (the send may have gone
        out before the owner died), the rest of its claimed batch goes back as it was. Returns how
        many went back.

        A live process's rows are never touched, however long its send takes. `anyone_else`: every
        other owner counts as gone (an embedded database has one Huddle at a time).
        """

        async def unit(conn: AsyncConnection) -> int:
            gone = outbox.c.claimed_by != worker if anyone_else else sa.and_(
                outbox.c.claimed_by != worker, dead_owner(outbox.c.claimed_by, now))
            handed = outbox.c.handed_at.is_not(None)
            result = await conn.execute(
                outbox.update()
                .where(
                    outbox.c.status == OutboundStatus.SENDING.value,
                    outbox.c.channel.in_(channels),
                    sa.or_(gone, outbox.c.claimed_by.is_(None)),
                )
                .values(
                    status=OutboundStatus.QUEUED.value,
                    resent=sa.or_(outbox.c.resent, handed),
                    attempts=sa.case((handed, outbox.c.attempts), (outbox.c.attempts > 0, outbox.c.attempts - 1),
                                     else_=0),
                    claimed_by=None,
                    handed_at=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
            return int(result.rowcount or 0)

        return await self.db.run(unit)

    async def release_mine(self, worker: str, ids: list[int], now: datetime) -> int:
        """Give back rows this process claimed but has not handed over (its lease lapsed meanwhile)."""
        if not ids:
            return 0

        async def unit(conn: AsyncConnection) -> int:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids), outbox.c.status == OutboundStatus.SENDING.value,
                       outbox.c.claimed_by == worker)
                .values(status=OutboundStatus.QUEUED.value, claimed_by=None, handed_at=None, next_attempt_at=now,
                        attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0), updated_at=now)
            )
            return int(result.rowcount or 0)

        return await self.db.run(unit)

    async def release_strays(self, channel: str, worker: str, claimed_at: datetime, held: list[int],
                             now: datetime) -> int:
        """Give back `channel`'s rows that this process's claim at `claimed_at` took but it does
        not hold: that claim's commit went through while its answer was lost (the database went
        away)."""

        async def unit(conn: AsyncConnection) -> int:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.channel == channel, outbox.c.status == OutboundStatus.SENDING.value,
                       outbox.c.claimed_by == worker, outbox.c.claimed_at == claimed_at, outbox.c.id.not_in(held))
                .values(status=OutboundStatus.QUEUED.value, claimed_by=None, handed_at=None, next_attempt_at=now,
                        attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0), updated_at=now)
            )
            return int(result.rowcount or 0)

        return await self.db.run(unit)

    async def delivery(self, report: DeliveryReport, now: datetime) -> Outbound | None:
        """Apply a delivery report to the newest part with that provider id, and settle its message
        if its send has returned. A report no receipt matches is kept (see `record_receipt`) and
        None is returned."""

        async def unit(conn: AsyncConnection) -> Outbound | None:
            query = (
                sa.select(receipts.c.id, receipts.c.outbox_id)
                .where(receipts.c.channel == report.channel, receipts.c.provider_id == report.provider_id)
                .order_by(receipts.c.id.desc())
                .limit(1)
            )
            if report.address is not None:
                query = query.join(outbox, outbox.c.id == receipts.c.outbox_id).where(
                    outbox.c.address == report.address.id
                )
            found = (await conn.execute(query)).first()
            if found is None:
                await conn.execute(kept_reports.insert().values(
                    channel=report.channel, provider_id=report.provider_id,
                    address=report.address.id if report.address is not None else None,
                    delivered=report.delivered, reason=report.reason, reported_at=report.at, received_at=now))
                return None
            await _set_part(conn, found.id, report.delivered, report.reason, now)
            row = (await conn.execute(sa.select(outbox).where(outbox.c.id == found.outbox_id))).one()
            if row.sent_at is not None and row.status in _SETTLEABLE:
                values = await _settled(conn, found.outbox_id, report.at or now)
                if values:
                    await conn.execute(outbox.update().where(outbox.c.id == found.outbox_id).values(
                        updated_at=now, **values))
                    row = (await conn.execute(sa.select(outbox).where(outbox.c.id == found.outbox_id))).one()
            return row_to_outbound(row)

        return await self.db.run(unit)

    async def kept(self, channel: str | None = None, limit: int = 100) -> list[KeptReport]:
        """Delivery reports that matched no message (yet), newest first."""
        query = sa.select(kept_reports).order_by(kept_reports.c.id.desc()).limit(limit)
        if channel is not None:
            query = query.where(kept_reports.c.channel == channel)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [KeptReport(r.channel, r.provider_id, r.address, bool(r.delivered), r.reason, r.reported_at,
                           r.received_at) for r in rows]

    async def receipts_of(self, msg_id: int) -> list[tuple[str, OutboundStatus, str | None]]:
        """(provider id, status, reason) of each part of a message, in the order they were recorded."""
        async with self.db.read() as conn:
            rows = (await conn.execute(
                sa.select(receipts.c.provider_id, receipts.c.status, receipts.c.reason)
                .where(receipts.c.outbox_id == msg_id).order_by(receipts.c.id))).all()
        return [(r.provider_id, OutboundStatus(r.status), r.reason) for r in rows]

    # -- reads for status and tests ---------------------------------------------------------------

    async def get(self, msg_id: int) -> Outbound | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(outbox).where(outbox.c.id == msg_id))).first()
        return row_to_outbound(row) if row else None

    async def find(
        self, *, address: Address | None = None, status: OutboundStatus | None = None, limit: int = 1000
    ) -> list[Outbound]:
        query = sa.select(outbox).order_by(outbox.c.id).limit(limit)
        if address is not None:
            query = query.where(outbox.c.channel == address.channel, outbox.c.address == address.id)
        if status is not None:
            query = query.where(outbox.c.status == status.value)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [row_to_outbound(r) for r in rows]

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox.c.channel, outbox.c.status, sa.func.count()).group_by(
                        outbox.c.channel, outbox.c.status
                    )
                )
            ).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def recent_errors(self, limit: int = 5) -> list[tuple[datetime, str, str, str]]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox.c.updated_at, outbox.c.channel, outbox.c.address, outbox.c.reason)
                    .where(outbox.c.reason.is_not(None))
                    .order_by(outbox.c.updated_at.desc())
                    .limit(limit)
                )
            ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]


async def _hand_over_many(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[None]:
    await _SET_BY_ID.execute_many(conn, rows)
    return [None] * len(rows)


def _queue_values(msg: Outbound, now: datetime) -> dict[str, Any]:
    return {
        "channel": msg.address.channel,
        "address": msg.address.id,
        "body": msg.body,
        "kind": msg.kind.value,
        "idempotency_key": msg.idempotency_key,
        "status": OutboundStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": msg.next_attempt_at or now,
        "buttons": [[b.text, b.data] for b in msg.buttons] or None,
        "thread": msg.thread,
        "person_id": msg.person_id,
        "quiet_tz": msg.quiet_tz,
        "compliance": msg.compliance,
        "resent": False,
        "created_at": now,
        "updated_at": now,
    }


async def _enqueue_many(conn: AsyncConnection, items: list[tuple[Outbound, datetime]]) -> list[tuple[Outbound, bool]]:
    rows = await _QUEUE.each_many(conn, [_queue_values(m, now) for m, now in items],
                                  key=("channel", "idempotency_key"))
    out = []
    for (msg, _), row in zip(items, rows, strict=True):
        if row is not None:
            out.append((row_to_outbound(row), True))
            continue
        existing = (await conn.execute(sa.select(outbox).where(
            outbox.c.channel == msg.address.channel, outbox.c.idempotency_key == msg.idempotency_key))).one()
        out.append((row_to_outbound(existing), False))
    return out


_KNOWN_RECEIPTS = Prepared(
    sa.select(receipts.c.outbox_id, receipts.c.provider_id).where(
        receipts.c.outbox_id.in_(sa.bindparam("ids", expanding=True)))
)
_KEPT_FOR = Prepared(
    sa.select(kept_reports.c.channel, kept_reports.c.provider_id).where(
        kept_reports.c.channel.in_(sa.bindparam("channels", expanding=True)),
        kept_reports.c.provider_id.in_(sa.bindparam("provider_ids", expanding=True)))
)
_DELIVER_PARTS = Prepared(
    receipts.update()
    .where(receipts.c.outbox_id == sa.bindparam("row_id"), receipts.c.status == OutboundStatus.SENT.value)
    .values(status=OutboundStatus.DELIVERED.value, updated_at=sa.bindparam("now", type_=UTCDateTime))
)


async def _mark_sent_many(
    conn: AsyncConnection, items: list[tuple[Outbound, list[str], bool, datetime]]
) -> list[None]:
    """`OutboxRepo.mark_sent` for many sends: one statement each for what every send needs (the
    receipts already there, the new ones, a look for kept reports, the statuses); the rarer steps
    (reports that came early) per send, in the senders' order."""
    known: dict[int, set[str]] = {}
    for row in await _KNOWN_RECEIPTS.all(conn, {"ids": [m.id for m, *_ in items]}):
        known.setdefault(row.outbox_id, set()).add(row.provider_id)
    new_by_msg: list[list[str]] = []
    parts = []
    for msg, provider_ids, delivered, now in items:
        assert msg.id is not None
        new = [pid for pid in dict.fromkeys(provider_ids) if pid not in known.get(msg.id, ())]
        new_by_msg.append(new)
        status = OutboundStatus.DELIVERED if delivered else OutboundStatus.SENT
        parts += [{"outbox_id": msg.id, "channel": msg.address.channel, "provider_id": pid, "status": status.value,
                   "created_at": now, "updated_at": now} for pid in new]
    if parts:
        await _ADD_RECEIPTS.execute_many(conn, parts)
    maybe_kept = sorted({pid for (_, _, delivered, _), new in zip(items, new_by_msg, strict=True)
                         if not delivered for pid in new})
    channels = sorted({m.address.channel for m, *_ in items})
    kept = {(r.channel, r.provider_id) for r in await _KEPT_FOR.all(
        conn, {"channels": channels, "provider_ids": maybe_kept})} if maybe_kept else set()
    updates = []
    for (msg, _, delivered, now), new in zip(items, new_by_msg, strict=True):
        assert msg.id is not None
        values: dict[str, Any] = {"row_id": msg.id, "sent_at": now, "reason": None, "claimed_by": None,
                                  "delivered_at": None, "updated_at": now, "status": OutboundStatus.SENT.value}
        had = bool(known.get(msg.id))
        if delivered:
            if had:
                await _DELIVER_PARTS.execute(conn, {"row_id": msg.id, "now": now})
            values |= {"status": OutboundStatus.DELIVERED.value, "delivered_at": now}
        else:
            applied = [await _apply_kept(conn, msg, pid, now) for pid in new
                       if (msg.address.channel, pid) in kept]
            settled = await _settled(conn, msg.id, now) if had or any(applied) else {}
            values |= settled
        updates.append(values)
    await _SET_BY_ID.execute_many(conn, updates)
    return [None] * len(items)


_SETTLEABLE = frozenset({OutboundStatus.SENT.value, OutboundStatus.DELIVERED.value, OutboundStatus.FAILED.value})
"""Statuses a delivery report may change (once the send has returned; never a refusal)."""


async def _set_part(conn: AsyncConnection, receipt_id: int, delivered: bool, reason: str | None,
                    now: datetime) -> None:
    status = OutboundStatus.DELIVERED if delivered else OutboundStatus.FAILED
    await conn.execute(receipts.update().where(receipts.c.id == receipt_id).values(
        status=status.value, reason=reason, updated_at=now))


async def _settled(conn: AsyncConnection, msg_id: int, delivered_at: datetime) -> dict[str, Any]:
    """The message status its parts' reports add up to: failed if one failed, delivered once all
    were; empty while some part has no report yet."""
    parts = (await conn.execute(
        sa.select(receipts.c.status, receipts.c.reason).where(receipts.c.outbox_id == msg_id))).all()
    failed = [p for p in parts if p.status == OutboundStatus.FAILED.value]
    if failed:
        return {"status": OutboundStatus.FAILED.value, "reason": failed[0].reason or "not delivered"}
    if parts and all(p.status == OutboundStatus.DELIVERED.value for p in parts):
        return {"status": OutboundStatus.DELIVERED.value, "delivered_at": delivered_at}
    return {}


async def _apply_kept(conn: AsyncConnection, msg: Outbound, provider_id: str, now: datetime) -> bool:
    """Apply the newest kept report to the new receipt `provider_id` of `msg`, and forget it.

    Only a report received since the message was created can be about it (an SMS reference comes
    round again every 256 messages), and one that names an address must name the message's.
    """
    k = kept_reports.c
    query = (
        sa.select(k.id, k.delivered, k.reason)
        .where(k.channel == msg.address.channel, k.provider_id == provider_id,
               sa.or_(k.address.is_(None), k.address == msg.address.id))
        .order_by(k.id.desc())
        .limit(1)
    )
    if msg.created_at is not None:
        query = query.where(k.received_at >= msg.created_at)
    found = (await conn.execute(query)).first()
    if found is None:
        return False
    receipt = (await conn.execute(sa.select(receipts.c.id).where(
        receipts.c.outbox_id == msg.id, receipts.c.provider_id == provider_id)
        .order_by(receipts.c.id.desc()).limit(1))).scalar_one()
    await _set_part(conn, receipt, bool(found.delivered), found.reason, now)
    await conn.execute(kept_reports.delete().where(k.id == found.id))
    return True
