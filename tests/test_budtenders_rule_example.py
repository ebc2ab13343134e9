"""The after-order rule registry, and the how-to's example rule firing from a real POS order.

The example (`docs/examples/coaching_rule.py`) is loaded from its file, registered as a plugin next
to the store and budtender plugins, and a POS webhook order goes through the store's ingest, the
order hook, the rules and the outbox to Sarah's phone (a fake SMS channel).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from coaching import budtenders as bt
from coaching.budtender_coach import order_rules, register_order_rule
from coaching.budtenders import AfterOrder, CoachingRules, Kind, OrderRule, OrderRules, Shift, ShiftTally, Watermark
from coaching.roles import Role
from handlers.budtenders import coach_of
from handlers.store import services
from storage.budtenders import Sent
from tests.flows import Flow
from tests.test_budtenders_flow import CONFIG, PLUGINS, SARAH, START, Store, sarah_texts

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "coaching_rule.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("huddle_example_coaching_rule", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def open_shop(db_url: str, extra: list[Any]) -> tuple[Flow, Store, int]:
    """Sarah (POS id E1, usual ticket $50) on a 10:00-18:00 shift, like tests/test_budtenders_flow.py."""
    flow = await Flow.create(plugins=[*PLUGINS, *extra], config=CONFIG, start=START, database_url=db_url)
    sarah = await flow.person("Sarah Kim", {Role.BUDTENDER}, sms=SARAH)
    assert sarah.id is not None

    async def unit(conn: Any) -> None:
        await services(flow.app).sales.upsert_staff_in(conn, [{
            "external_id": "E1", "person_id": sarah.id, "name": "Sarah Kim", "phone": SARAH,
            "role": "budtender", "active": True, "updated_at": START}])

    await flow.app.db.run(unit)
    await coach_of(flow.app).repo.save_watermarks([Watermark(sarah.id, days=10, avg_ticket=Decimal("50.00"),
                                                             computed_at=START)])
    await flow.advance(timedelta(minutes=10))  # 10:05, on shift
    return flow, Store(flow), sarah.id


@pytest.fixture
async def example_shop(db_url: str) -> AsyncIterator[tuple[Flow, Store, int]]:
    flow, store, pid = await open_shop(db_url, [load_example().plugin])
    yield flow, store, pid
    await flow.close()


async def test_the_example_rule_fires_from_a_pos_order_once_per_shift(example_shop: tuple[Flow, Store, int]) -> None:
    flow, store, pid = example_shop
    assert coach_of(flow.app).order_rules.names() == ["big_ticket", "celebrations", "nudge"]
    await store.order("45.00")
    assert sarah_texts(flow) == []
    await store.order("120.00")  # 2.4 × her usual $50
    texts = sarah_texts(flow)
    assert len(texts) == 1, texts
    assert texts[0].startswith("Sarah, $120 on one ticket") and "usual $50.00" in texts[0] and len(texts[0]) <= 160
    await store.order("130.00")
    assert len(sarah_texts(flow)) == 1  # once per shift
    shift = await coach_of(flow.app).current(pid)
    assert shift is not None
    rows = await coach_of(flow.app).repo.messages()
    assert [(r["kind"], r["key"]) for r in rows] == [("big_ticket", f"big_ticket:{pid}:{shift.id}")]


async def test_a_refund_of_a_big_order_sends_nothing(example_shop: tuple[Flow, Store, int]) -> None:
    flow, store, _ = example_shop
    await store.order("150.00", order_id="T9", status="refunded")
    assert sarah_texts(flow) == []


async def test_in_the_feedback_group_it_wins_over_a_celebration_on_that_order(
        example_shop: tuple[Flow, Store, int]) -> None:
    flow, store, _ = example_shop
    await store.order("20.00", signup=True)
    await store.order("20.00", signup=True)
    await store.order("110.00", signup=True)  # the third sign-up and a big ticket
    texts = sarah_texts(flow)
    assert len(texts) == 1 and "on one ticket" in texts[0], texts
    await store.order("20.00")  # the next order: the sign-up celebration was only held back
    texts = sarah_texts(flow)
    assert len(texts) == 2 and "sign-ups" in texts[1], texts


async def test_without_the_plugin_the_same_order_sends_nothing(db_url: str) -> None:
    flow, store, _ = await open_shop(db_url, [])
    try:
        assert coach_of(flow.app).order_rules.names() == ["celebrations", "nudge"]
        await store.order("120.00")
        assert sarah_texts(flow) == []
    finally:
        await flow.close()


async def test_a_rule_name_registered_twice_is_refused() -> None:
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START)
    try:
        rule = load_example().RULE
        register_order_rule(flow.app, rule)
        with pytest.raises(ValueError, match="big_ticket"):
            register_order_rule(flow.app, rule)
        assert order_rules(flow.app) is coach_of(flow.app).order_rules
    finally:
        await flow.close()


# -- the registry on plain data ----------------------------------------------------------------

T0 = START + timedelta(hours=1)
SHIFT = Shift(7, 42, START, START + timedelta(hours=8))
WM = Watermark(42, days=10, avg_ticket=Decimal("50.00"))


def situation() -> AfterOrder:
    return AfterOrder("Sam", SHIFT, ShiftTally(), WM, [], T0, CoachingRules())


def say(key: str) -> Any:
    return lambda s: bt.Coaching(key, "test", "A", key, s.shift.person_id, s.shift.id)


def test_priority_then_registration_order_and_groups_exclude() -> None:
    asked: list[str] = []

    def spy(name: str, result: Any) -> Any:
        def check(s: AfterOrder) -> Any:
            asked.append(name)
            return result(s) if callable(result) else result
        return check

    rules = OrderRules([
        OrderRule("quiet", spy("quiet", None), priority=5, group="g"),
        OrderRule("loud", spy("loud", say("loud")), priority=5, group="g"),
        OrderRule("first", spy("first", []), priority=9, group="g"),
        OrderRule("free", spy("free", say("free")), priority=1),
        OrderRule("after", spy("after", say("after")), priority=0, group="g"),
        OrderRule("many", spy("many", lambda s: [say("m1")(s), say("m2")(s)]), priority=3, group="h"),
    ])
    assert rules.names() == ["first", "quiet", "loud", "many", "free", "after"]
    found = rules.evaluate(situation())
    assert [c.key for c in found] == ["loud", "m1", "m2", "free"]
    assert asked == ["first", "quiet", "loud", "many", "free"]  # "after" is in the group that fired


def test_the_built_in_rules_keep_celebration_over_nudge() -> None:
    assert [r.name for r in bt.BUILTIN_RULES] == ["celebrations", "nudge"]
    weak = ShiftTally()
    for _ in range(5):
        weak.recent.append(Decimal("20"))
        weak.orders += 1
    weak.signups = 3
    found = bt.after_order("Sam", SHIFT, weak, WM, [], T0, CoachingRules())
    assert [c.kind for c in found] == [Kind.CELEBRATE]
    history = [Sent(found[0].key, Kind.CELEBRATE, T0, 5)]
    later = bt.after_order("Sam", SHIFT, weak, WM, history, T0, CoachingRules())
    assert [c.kind for c in later] == [Kind.NUDGE]
