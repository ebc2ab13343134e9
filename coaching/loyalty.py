"""Loyalty rules (pure): what an order is worth in points, and the ledger entries it produces.

Points are whole numbers: `floor(total × points_per_dollar)`. The budtender on the order earns
`multiplier ×` the order's points (10× in the predecessor system). Refunds and voids add
reversing entries, so a balance is always the plain sum of the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from storage.loyalty import LedgerEntry
from storage.pos_orders import LedgerChange, OrderParties

DEFAULT_TIERS: tuple[tuple[str, int], ...] = (("silver", 250), ("gold", 500), ("vip", 1000))
"""Points tiers, lowest first: a customer whose balance reaches a tier's points moves up to it."""


@dataclass(frozen=True, slots=True)
class LoyaltyRules:
    points_per_dollar: Decimal = Decimal("1")
    budtender_multiplier: Decimal = Decimal("10")
    tiers: tuple[tuple[str, int], ...] = DEFAULT_TIERS


def parse_tiers(text: str) -> tuple[tuple[str, int], ...]:
    """`silver:250,gold:500,vip:1000` → tiers sorted by points (ValueError on a malformed entry)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, points = part.partition(":")
        if not sep or not name.strip() or not points.strip().isdigit():
            raise ValueError(f"tier {part!r}: write NAME:POINTS, e.g. gold:500")
        out.append((name.strip().lower(), int(points)))
    return tuple(sorted(out, key=lambda t: t[1]))


def tier_for(points: int, tiers: tuple[tuple[str, int], ...]) -> str | None:
    """The highest tier a balance reaches, or None below the first."""
    found = None
    for name, needed in tiers:
        if points >= needed:
            found = name
    return found


def tier_rank(name: str | None, tiers: tuple[tuple[str, int], ...]) -> int:
    """A tier's place (0 = lowest); -1 for none or a tier name the rules do not know (a POS's own)."""
    names = [n for n, _ in tiers]
    return names.index(name.lower()) if name and name.lower() in names else -1


def order_points(total: Decimal, rules: LoyaltyRules) -> int:
    if total <= 0:
        return 0
    return int((total * rules.points_per_dollar).to_integral_value(rounding=ROUND_FLOOR))


def award_keys(order_external_id: str) -> tuple[str, str]:
    return f"order:{order_external_id}:customer", f"order:{order_external_id}:budtender"


def refund_keys(order_external_id: str) -> tuple[str, str]:
    return f"refund:{order_external_id}:customer", f"refund:{order_external_id}:budtender"


def order_entries(
    order_external_id: str,
    total: Decimal,
    *,
    customer_id: int | None,
    customer_earns: bool,
    budtender_person_id: int | None,
    rules: LoyaltyRules,
    now: datetime,
) -> list[LedgerEntry]:
    """The awards for a completed order (an entry with 0 points is left out)."""
    points = order_points(total, rules)
    entries: list[LedgerEntry] = []
    c_key, b_key = award_keys(order_external_id)
    if customer_id is not None and customer_earns and points:
        entries.append(LedgerEntry(c_key, points, "purchase", now, customer_id=customer_id,
                                   order_external_id=order_external_id))
    bonus = int((Decimal(points) * rules.budtender_multiplier).to_integral_value(rounding=ROUND_FLOOR))
    if budtender_person_id is not None and bonus:
        entries.append(LedgerEntry(b_key, bonus, "budtender_bonus", now, person_id=budtender_person_id,
                                   order_external_id=order_external_id))
    return entries


def reversal_entries(awarded: list[LedgerEntry], now: datetime) -> list[LedgerEntry]:
    """Entries that cancel the awards of a refunded or voided order."""
    out = []
    for e in awarded:
        key = e.key.replace("order:", "refund:", 1)
        out.append(LedgerEntry(key, -e.delta, "refund", now, customer_id=e.customer_id, person_id=e.person_id,
                               order_external_id=e.order_external_id))
    return out


@dataclass(frozen=True, slots=True)
class OrderLedger:
    """The loyalty rules as the POS order batch asks them (`storage.pos_orders.LedgerPolicy`).

    A counting order gets its awards (an award the order no longer earns, and any refund of an
    earlier reversal, are removed: a refunded order that comes back completed earns again); a
    refunded or voided one reverses exactly what was awarded, read from the ledger.
    """

    rules: LoyaltyRules

    def reads(self, order: OrderParties) -> list[str]:
        return [] if order.order.counts else list(award_keys(order.order.external_id))

    def change(self, order: OrderParties, stored: Mapping[str, int], now: datetime) -> LedgerChange:
        d = order.order
        if d.counts:
            entries = order_entries(d.external_id, d.total, customer_id=order.customer_id,
                                    customer_earns=order.customer_is_member,
                                    budtender_person_id=order.budtender_person_id, rules=self.rules, now=now)
            stale = sorted(set(award_keys(d.external_id)) - {e.key for e in entries})
            return LedgerChange(remove=[*refund_keys(d.external_id), *stale], put=entries)
        c_key, b_key = award_keys(d.external_id)
        awarded = []
        if c_key in stored:
            awarded.append(LedgerEntry(c_key, stored[c_key], "purchase", now, customer_id=order.customer_id,
                                       order_external_id=d.external_id))
        if b_key in stored:
            awarded.append(LedgerEntry(b_key, stored[b_key], "purchase", now, person_id=order.budtender_person_id,
                                       order_external_id=d.external_id))
        return LedgerChange(add=reversal_entries(awarded, now))

    def tier_up(self, balance: int, current: str | None) -> str | None:
        """The tier a customer moves up to with this balance, or None (tiers never move down here)."""
        reached = tier_for(balance, self.rules.tiers)
        if reached is None or tier_rank(reached, self.rules.tiers) <= tier_rank(current, self.rules.tiers):
            return None
        return reached
