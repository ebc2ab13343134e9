"""Budtender coaching rules on plain data: metrics, watermarks, every trigger, and SMS length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from coaching import budtenders as bt
from coaching.budtenders import CoachingRules, Kind, Sent, Shift, ShiftTally, Watermark
from storage.sales import Transaction, TransactionItem, TransactionStatus

T0 = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
RULES = CoachingRules()
SHIFT = Shift(7, 42, T0, T0 + timedelta(hours=8))
WM = Watermark(42, days=10, avg_ticket=Decimal("50.00"), avg_day_sales=Decimal("1500.00"))


def txn(n: int, total: str, *, at: datetime | None = None, customer: int | None = None, signup: bool = False,
        tier: int = 2, house: bool = False, status: TransactionStatus = TransactionStatus.COMPLETED) -> Transaction:
    amount = Decimal(total)
    item = TransactionItem("P", "Thing", "flower", 1, amount, amount, price_tier=tier, house_brand=house)
    return Transaction(n, f"T{n}", 1, customer, 42, at or T0 + timedelta(minutes=10 * n), amount, status=status,
                       rewards_signup=signup, items=[item])


def test_shift_metrics_are_exact() -> None:
    orders = [
        txn(1, "40.00", customer=1, signup=True, house=True),
        txn(2, "60.50", customer=1, tier=3),
        txn(3, "20.25"),
        txn(4, "99.99", status=TransactionStatus.REFUNDED),
    ]
    m = bt.shift_metrics(orders)
    assert m.sales == Decimal("120.75")
    assert m.orders == 3
    assert m.customers == 2  # customer 1 twice, one anonymous order
    assert m.avg_ticket == Decimal("40.25")
    assert (m.signups, m.upsells) == (1, 1)
    assert m.house_share == Decimal("0.33")
    assert bt.shift_metrics([]).avg_ticket == Decimal("0")


def test_tally_ignores_an_order_seen_twice() -> None:
    t = ShiftTally()
    assert t.add(txn(1, "10"), RULES)
    assert not t.add(txn(1, "10"), RULES)
    assert t.orders == 1


def test_watermark_averages_and_bests_over_past_days_only() -> None:
    past = [txn(i, "50", at=T0 - timedelta(days=1 + i % 3)) for i in range(1, 10)]
    past.append(txn(20, "100", at=T0 - timedelta(days=1), signup=True))
    today = [txn(30, "999", at=T0)]
    old = [txn(40, "999", at=T0 - timedelta(weeks=6))]
    wm = bt.watermark(42, past + today + old, "UTC", T0 + timedelta(hours=1), RULES)
    assert wm.days == 3
    assert wm.avg_ticket == Decimal("55.00")  # (9*50 + 100) / 10
    assert wm.best_day_sales == Decimal("250")
    assert wm.best_signups == 1
    assert not bt.watermark(42, [], "UTC", T0, RULES).known


def test_midshift_every_two_hours_inside_the_shift() -> None:
    assert bt.due_midshift(SHIFT, T0 + timedelta(hours=1, minutes=59), RULES) is None
    assert bt.due_midshift(SHIFT, T0 + timedelta(hours=2), RULES) == 1
    assert bt.due_midshift(SHIFT, T0 + timedelta(hours=2, minutes=31), RULES) is None  # too late: skipped
    assert bt.due_midshift(SHIFT, T0 + timedelta(hours=6, minutes=5), RULES) == 3
    assert bt.due_midshift(SHIFT, T0 + timedelta(hours=8), RULES) is None  # the end is the summary's
    t = bt.tally([txn(1, "40")], RULES)
    msg = bt.midshift("Sarah Connor", SHIFT, 2, t, WM, RULES)
    assert msg.key == "midshift:42:7:2" and msg.kind == Kind.MIDSHIFT
    assert "halfway through your shift" in msg.text and "Sarah" in msg.text and "3" in msg.text


def weak_shift(n: int) -> ShiftTally:
    return bt.tally([txn(i, "30") for i in range(1, n + 1)], RULES)


def test_nudge_after_five_weak_orders_then_never_nags() -> None:
    assert bt.nudge("John", SHIFT, weak_shift(4), WM, [], T0, RULES) is None  # fewer than 5 orders
    first = bt.nudge("John", SHIFT, weak_shift(5), WM, [], T0, RULES)
    assert first is not None and first.key == "nudge:42:7:1"
    assert "40% below your average" in first.text or "$30.00" in first.text
    history = [Sent(first.key, Kind.NUDGE, T0, orders_at_send=5)]
    # the very next order: still weak, but within the cooldown and no fresh window
    assert bt.nudge("John", SHIFT, weak_shift(6), WM, history, T0 + timedelta(minutes=5), RULES) is None
    # cooldown passed but only 3 new orders
    assert bt.nudge("John", SHIFT, weak_shift(8), WM, history, T0 + timedelta(hours=1), RULES) is None
    second = bt.nudge("John", SHIFT, weak_shift(10), WM, history, T0 + timedelta(hours=1), RULES)
    assert second is not None and second.key == "nudge:42:7:2"
    history.append(Sent(second.key, Kind.NUDGE, T0 + timedelta(hours=1), orders_at_send=10))
    assert bt.nudge("John", SHIFT, weak_shift(20), WM, history, T0 + timedelta(hours=3), RULES) is None  # cap


def test_no_nudge_when_drop_is_small_muted_or_no_watermark() -> None:
    ok = bt.tally([txn(i, "36") for i in range(1, 6)], RULES)  # 28 % below: not enough
    assert bt.nudge("John", SHIFT, ok, WM, [], T0, RULES) is None
    muted = Shift(7, 42, T0, T0 + timedelta(hours=8), muted_until=T0 + timedelta(hours=8))
    assert bt.nudge("John", muted, weak_shift(5), WM, [], T0, RULES) is None
    assert bt.nudge("John", SHIFT, weak_shift(5), Watermark(42), [], T0, RULES) is None


def test_celebrations_once_each() -> None:
    t = bt.tally([txn(i, "70", signup=i <= 3) for i in range(1, 6)], RULES)
    found = bt.celebrations("Maria", SHIFT, t, WM, [], T0, RULES)
    assert {c.key for c in found} == {"celebrate:42:7:signups", "celebrate:42:7:ticket"}
    history = [Sent(c.key, c.kind, T0) for c in found]
    assert bt.celebrations("Maria", SHIFT, t, WM, history, T0, RULES) == []
    # a celebration wins over a nudge for the same order
    assert all(c.kind == Kind.CELEBRATE for c in bt.after_order("Maria", SHIFT, t, WM, [], T0, RULES))


def test_summary_with_tomorrows_goals() -> None:
    t = bt.tally([txn(1, "40", signup=True), txn(2, "80", tier=3, house=True)], RULES)
    s = bt.summary("Maria", SHIFT, t, WM, RULES)
    assert s.key == "summary:42:7"
    assert "Tomorrow" in s.text and "$63" in s.text  # max(50, 60) * 1.05
    assert bt.summary_due(SHIFT, SHIFT.ends_at, RULES)
    assert not bt.summary_due(SHIFT, SHIFT.ends_at - timedelta(seconds=1), RULES)


def test_weekly_review_compares_with_last_week() -> None:
    week = [txn(i, "60", at=T0 + timedelta(days=i % 3)) for i in range(1, 7)]
    prev = [txn(i + 10, "50", at=T0 - timedelta(days=7)) for i in range(1, 4)]
    w = bt.weekly("Maria", 42, week, prev, "UTC", "2026-W48", RULES)
    assert w is not None and w.key == "weekly:42:2026-W48"
    assert "+20% vs last week" in w.text
    assert bt.weekly("Maria", 42, [], prev, "UTC", "2026-W48", RULES) is None
    linked = bt.weekly("Maria", 42, week, prev, "UTC", "2026-W48", RULES, link="http://h/b/1/2026-W48")
    assert linked is not None and linked.text.endswith("http://h/b/1/2026-W48")


@pytest.mark.parametrize("name", ["Al", "Maximiliano-Alejandro Rodriguez", "Zoë 🌿"])
def test_every_message_fits_one_gsm7_segment(name: str) -> None:
    big = bt.tally([txn(i, "9999.99", signup=True, tier=3, customer=i) for i in range(1, 400)], RULES)
    wm = Watermark(42, days=3, avg_ticket=Decimal("1234.56"))
    texts = [
        bt.midshift(name, SHIFT, 1, big, wm, RULES).text,
        bt.summary(name, SHIFT, big, wm, RULES).text,
        bt.stats_text(name, big, wm, RULES),
        bt.goal_text(big, wm, RULES),
        bt.board_text([(i, name, big) for i in range(6)], 3),
        *[c.text for c in bt.celebrations(name, SHIFT, big, wm, [], T0, RULES)],
    ]
    weak = bt.tally([txn(i, "1") for i in range(1, 6)], RULES)
    nudge = bt.nudge(name, SHIFT, weak, wm, [], T0, RULES)
    assert nudge is not None
    texts.append(nudge.text)
    for text in texts:
        length = bt.gsm7_length(text)
        assert length is not None and length <= 160, text


def test_fit_sms_plain_punctuation_and_cut() -> None:
    assert bt.fit_sms("Nice — “great” job…") == 'Nice - "great" job...'
    long = "First sentence here. " + "x" * 300
    assert bt.fit_sms(long) == "First sentence here."
    assert len(bt.fit_sms("y" * 500)) == 160
    assert bt.fit_sms("curly {} costs two") == "curly {} costs two"
    braces = bt.fit_sms("{" * 200)
    assert bt.gsm7_length(braces) == 159 and braces.endswith("...")


def test_variants_are_stable_and_both_used() -> None:
    assert bt.variant_for(1, Kind.NUDGE) == bt.variant_for(1, Kind.NUDGE)
    assert {bt.variant_for(p, Kind.NUDGE) for p in range(20)} == {"A", "B"}


def test_board_names_my_place() -> None:
    rows = [(1, "Ann", bt.tally([txn(1, "10")], RULES)), (2, "Bob", bt.tally([txn(2, "90")], RULES))]
    text = bt.board_text(rows, 1)
    assert text.startswith("Today: 1. Bob $90.00, 2. Ann $10.00") and "You're #2 of 2" in text
    assert bt.board_text([], 1) == "No sales recorded today yet."
