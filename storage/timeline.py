"""One person's history across every channel and table, newest first, paged by keyset.

Sources: messages in (inbox) and out (outbox, with status and reason), coaching messages (type and
variant), handoffs to staff, points changes and POS orders. Each source is read with its own
indexed query "older than the cursor, newest first, LIMIT n+1", then merged; the cursor is the
(time, source, id) of the last entry shown, so page 400 costs what page 1 costs (no OFFSET).

Also here: finding people by name, phone, or any channel id, and a person's consent per address
with the message that changed it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from storage.budtenders import coaching_messages
from storage.customers import customers, handoffs
from storage.db import Database
from storage.inbox import inbound
from storage.loyalty import loyalty_ledger
from storage.outbox import outbox
from storage.people import addresses, opt_outs, persons
from storage.sales import transactions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SOURCES = ("order", "points", "handoff", "coaching", "in", "out")
"""Tie-break order at equal times (a later source is shown first)."""
RANK = {name: i for i, name in enumerate(SOURCES)}


@dataclass(frozen=True, slots=True)
class Cursor:
    at: datetime
    source: str
    id: int

    def encode(self) -> str:
        micros = (self.at - EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(f"{micros}:{self.source}:{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """None for a missing or malformed cursor (the first page)."""
        if not text:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            micros, source, ident = raw.split(":")
            if source not in RANK:
                return None
            return cls(EPOCH + timedelta(microseconds=int(micros)), source, int(ident))
        except (ValueError, UnicodeDecodeError, OverflowError):
            return None


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    source: str
    """in, out, coaching, handoff, points or order."""
    id: int
    channel: str = ""
    address: str = ""
    text: str = ""
    status: str = ""
    detail: str = ""
    """Why it failed, the coaching type/variant, who closed a handoff, a points reason…"""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.at, self.source, self.id)

    @property
    def key(self) -> tuple[datetime, int, int]:
        return (self.at, RANK[self.source], self.id)


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    next: Cursor | None


@dataclass(frozen=True, slots=True)
class Found:
    person_id: int
    name: str
    roles: str
    addresses: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Consent:
    channel: str
    address: str
    opted_out: bool
    keyword: str | None
    changed_at: datetime | None
    message_id: int | None = None
    message_text: str | None = None
    unreachable: str | None = None


def _older(time_col: Any, id_col: Any, source: str, cursor: Cursor | None) -> Any:
    """Rows strictly after `cursor` in (time desc, source rank desc, id desc) order."""
    if cursor is None:
        return sa.true()
    mine, theirs = RANK[source], RANK[cursor.source]
    if mine < theirs:
        return time_col <= cursor.at
    if mine > theirs:
        return time_col < cursor.at
    return sa.or_(time_col < cursor.at, sa.and_(time_col == cursor.at, id_col < cursor.id))


class TimelineRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, text: str, limit: int = 25) -> list[Found]:
        """People whose name contains `text`, or one of whose addresses (phone, Slack or Telegram id…) does."""
        q = text.strip()
        if not q:
            return []
        like = f"%{_escape_like(q.lower())}%"
        conds = [sa.func.lower(persons.c.name).like(like, escape="\\"),
                 sa.func.lower(addresses.c.address).like(like, escape="\\")]
        digits = re.sub(r"\D", "", q)
        if len(digits) >= 4 and digits != q:
            conds.append(addresses.c.address.like(f"%{digits}%"))
        ids = (sa.select(persons.c.id).select_from(persons.outerjoin(addresses, addresses.c.person_id == persons.c.id))
               .where(sa.or_(*conds)).distinct().order_by(persons.c.id).limit(limit))
        async with self.db.read() as conn:
            found = [r[0] for r in (await conn.execute(ids)).all()]
            if not found:
                return []
            rows = (await conn.execute(sa.select(persons.c.id, persons.c.name, persons.c.roles)
                                       .where(persons.c.id.in_(found)).order_by(persons.c.name, persons.c.id))).all()
            addrs = (await conn.execute(sa.select(addresses.c.person_id, addresses.c.channel, addresses.c.address)
                                        .where(addresses.c.person_id.in_(found))
                                        .order_by(addresses.c.id))).all()
        by_person: dict[int, list[tuple[str, str]]] = {}
        for a in addrs:
            by_person.setdefault(a.person_id, []).append((a.channel, a.address))
        return [Found(r.id, r.name, r.roles, by_person.get(r.id, [])) for r in rows]

    async def page(self, person_id: int, before: Cursor | None = None, limit: int = 50) -> Page:
        """Up to `limit` entries older than `before`, newest first, and the cursor of the next page."""
        n = limit + 1
        entries: list[Entry] = []
        async with self.db.read() as conn:
            customer_ids = [r[0] for r in (await conn.execute(
                sa.select(customers.c.id).where(customers.c.person_id == person_id))).all()]

            i = inbound.c
            rows = (await conn.execute(
                sa.select(i.id, i.received_at, i.channel, i.address, i.text, i.status, i.error, i.handler)
                .where(i.person_id == person_id, _older(i.received_at, i.id, "in", before))
                .order_by(i.received_at.desc(), i.id.desc()).limit(n))).all()
            entries += [Entry(r.received_at, "in", r.id, r.channel, r.address, r.text, r.status,
                              r.error or "", {"handler": r.handler}) for r in rows]

            o = outbox.c
            rows = (await conn.execute(
                sa.select(o.id, o.created_at, o.channel, o.address, o.body, o.status, o.reason, o.kind, o.attempts,
                          o.sent_at, o.delivered_at)
                .where(o.person_id == person_id, _older(o.created_at, o.id, "out", before))
                .order_by(o.created_at.desc(), o.id.desc()).limit(n))).all()
            entries += [Entry(r.created_at, "out", r.id, r.channel, r.address, r.body, r.status, r.reason or "",
                              {"kind": r.kind, "attempts": r.attempts, "sent_at": r.sent_at,
                               "delivered_at": r.delivered_at}) for r in rows]

            c = coaching_messages.c
            rows = (await conn.execute(
                sa.select(c.id, c.sent_at, c.kind, c.variant, c.text, c.answered_at)
                .where(c.person_id == person_id, _older(c.sent_at, c.id, "coaching", before))
                .order_by(c.sent_at.desc(), c.id.desc()).limit(n))).all()
            entries += [Entry(r.sent_at, "coaching", r.id, text=r.text,
                              status="answered" if r.answered_at else "not answered",
                              detail=f"{r.kind} · variant {r.variant}",
                              extra={"kind": r.kind, "variant": r.variant, "answered_at": r.answered_at})
                        for r in rows]

            h = handoffs.c
            rows = (await conn.execute(
                sa.select(h.id, h.opened_at, h.customer_address, h.staff_channel, h.staff_address, h.closed_at,
                          h.closed_by)
                .where(h.person_id == person_id, _older(h.opened_at, h.id, "handoff", before))
                .order_by(h.opened_at.desc(), h.id.desc()).limit(n))).all()
            entries += [Entry(r.opened_at, "handoff", r.id, r.staff_channel, r.customer_address,
                              f"asked for a person (#{r.id}), sent to {r.staff_channel}:{r.staff_address}",
                              "open" if r.closed_at is None else "closed",
                              f"closed by {r.closed_by}" if r.closed_at else "",
                              {"closed_at": r.closed_at}) for r in rows]

            lg = loyalty_ledger.c
            owner = lg.person_id == person_id
            if customer_ids:
                owner = sa.or_(owner, lg.customer_id.in_(customer_ids))
            rows = (await conn.execute(
                sa.select(lg.id, lg.created_at, lg.delta, lg.reason, lg.order_external_id, lg.note)
                .where(owner, _older(lg.created_at, lg.id, "points", before))
                .order_by(lg.created_at.desc(), lg.id.desc()).limit(n))).all()
            entries += [Entry(r.created_at, "points", r.id, text=f"{r.delta:+d} points", status=r.reason,
                              detail=_points_detail(r.note, r.order_external_id)) for r in rows]

            if customer_ids:
                t = transactions.c
                rows = (await conn.execute(
                    sa.select(t.id, t.occurred_at, t.external_id, t.total, t.status, t.rewards_signup)
                    .where(t.customer_id.in_(customer_ids), _older(t.occurred_at, t.id, "order", before))
                    .order_by(t.occurred_at.desc(), t.id.desc()).limit(n))).all()
                entries += [Entry(r.occurred_at, "order", r.id, text=f"order {r.external_id}: ${r.total}",
                                  status=r.status, detail="joined rewards" if r.rewards_signup else "")
                            for r in rows]

        entries.sort(key=lambda e: e.key, reverse=True)
        shown = entries[:limit]
        more = len(entries) > limit
        return Page(shown, shown[-1].cursor if more and shown else None)

    async def consent(self, person_id: int) -> list[Consent]:
        """Each address's opt-in/out, when it changed, and the message that changed it."""
        async with self.db.read() as conn:
            addrs = (await conn.execute(sa.select(addresses.c.channel, addresses.c.address,
                                                  addresses.c.unreachable_reason)
                                        .where(addresses.c.person_id == person_id)
                                        .order_by(addresses.c.id))).all()
            out: list[Consent] = []
            for a in addrs:
                row = (await conn.execute(sa.select(opt_outs).where(
                    opt_outs.c.channel == a.channel, opt_outs.c.address == a.address))).first()
                if row is None:
                    out.append(Consent(a.channel, a.address, False, None, None, unreachable=a.unreachable_reason))
                    continue
                # the change is made while its message is handled (one at a time per address): the latest
                # message from this address received by then is the one that made it
                hit = (await conn.execute(
                    sa.select(inbound.c.id, inbound.c.text)
                    .where(inbound.c.channel == a.channel, inbound.c.address == a.address,
                           inbound.c.received_at <= row.changed_at)
                    .order_by(inbound.c.received_at.desc(), inbound.c.id.desc()).limit(1))).first()
                msg_id, msg_text = (hit.id, hit.text) if hit is not None else (None, None)
                out.append(Consent(a.channel, a.address, bool(row.opted_out), row.keyword, row.changed_at,
                                   msg_id, msg_text, a.unreachable_reason))
        return out

    async def points_balance(self, person_id: int) -> int | None:
        """The points of this person's customer record(s); None when they have none."""
        async with self.db.read() as conn:
            ids = [r[0] for r in (await conn.execute(
                sa.select(customers.c.id).where(customers.c.person_id == person_id))).all()]
            if not ids:
                return None
            total = (await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(loyalty_ledger.c.delta), 0))
                                        .where(loyalty_ledger.c.customer_id.in_(ids)))).scalar_one()
        return int(total)

    async def open_handoffs(self, person_id: int) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(handoffs).where(handoffs.c.person_id == person_id,
                                                                 handoffs.c.closed_at.is_(None))
                                       .order_by(handoffs.c.id))).all()
        return [dict(r._mapping) for r in rows]


def _points_detail(note: str | None, order: str | None) -> str:
    return " · ".join(x for x in (note, f"order {order}" if order else None) if x)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


__all__ = ["Consent", "Cursor", "Entry", "Found", "Page", "TimelineRepo"]
