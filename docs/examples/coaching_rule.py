"""An after-order coaching rule as a plugin: praise a single big ticket (docs/howto-coaching-rule.md).

A budtender rings up one order at twice their usual average ticket or more: they get one text
saying so, at most once per shift. The rule is a pure function of the situation after the order
(`AfterOrder`: the shift's tally, the budtender's watermark, what was sent this shift, the order);
the plugin only registers it. `tests/test_budtenders_rule_example.py` loads this file and rings
up orders through the store's real POS ingest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.plugins import Plugin
from coaching import budtenders as bt
from coaching.budtender_coach import register_order_rule

KIND = "big_ticket"
"""Recorded with each message (`python main.py report coaching` counts replies per kind)."""
FACTOR = Decimal("2")


def big_ticket(s: bt.AfterOrder) -> bt.Coaching | None:
    """One order at `FACTOR` times the usual ticket or more; once per shift, never while muted."""
    order = s.order
    if order is None or not order.counts or not s.watermark.known or s.shift.muted(s.now):
        return None
    if order.total < FACTOR * s.watermark.avg_ticket:
        return None
    key = f"{KIND}:{s.shift.person_id}:{s.shift.id}"  # the outbox idempotency key too: never sent twice
    if any(sent.key == key for sent in s.history):
        return None
    text = (f"{bt.short_name(s.name)}, {bt.money(order.total)} on one ticket - over twice your usual "
            f"{bt.money(s.watermark.avg_ticket)}. Great upsell!")
    return bt.Coaching(key, KIND, bt.variant_for(s.shift.person_id, KIND), bt.fit_sms(text), s.shift.person_id,
                       s.shift.id)


RULE = bt.OrderRule(KIND, big_ticket, priority=30, group=bt.FEEDBACK)
"""In the built-in feedback group, above the celebrations: on that order it is the one text sent."""


def setup(app: Any) -> None:
    register_order_rule(app, RULE)


plugin = Plugin("big_ticket_rule", setup, requires=("budtenders",),
                description="texts a budtender who rings up one ticket at twice their usual")
