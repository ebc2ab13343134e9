"""Pure store rules: SMS length budget, intents, loyalty points (Decimal, never float)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from coaching.concierge import Intent, classify, mentioned_categories, name_from_reply
from coaching.loyalty import LoyaltyRules, order_entries, order_points, reversal_entries
from coaching.pos import PayloadError, parse_event, sign, signature_ok, timestamp_ok
from coaching.sms_text import fit, is_gsm, segments, units

NOW = datetime(2026, 11, 23, 18, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "a" * 5000, "€" * 400, "😀" * 3000, "Hi 😀 " * 300, "word " * 1000, "x" * 307, "é" * 500,
    "Maria’s “order” — ready…" * 40, "[" + "]" * 600,
])
def test_fit_never_exceeds_two_segments(text: str) -> None:
    out = fit(text, 2)
    assert segments(out) <= 2 and out
    assert fit(text, 4) and segments(fit(text, 4)) <= 4


def test_units_and_plain_punctuation() -> None:
    assert units("a€") == (3, True)
    assert units("😀")[0] == 2 and not is_gsm("😀")
    assert fit("It’s “fine” — really…") == "It's \"fine\" - really..."
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("ж" * 70) == 1 and segments("ж" * 134) == 2 and segments("ж" * 135) == 3
    short = "Hi Maria! You have 151 points."
    assert fit(short) == short


@pytest.mark.parametrize(("text", "intent"), [
    ("POINTS", Intent.POINTS), ("what's my balance", Intent.POINTS), ("Hours?", Intent.HOURS),
    ("are you open sunday", Intent.HOURS), ("ADDRESS", Intent.ADDRESS), ("where r u located", Intent.ADDRESS),
    ("JOIN", Intent.JOIN), ("signup", Intent.JOIN), ("sign me up", Intent.JOIN), ("HUMAN", Intent.HUMAN),
    ("agent", Intent.HUMAN), ("can I talk to a person", Intent.HUMAN), ("hello", Intent.GREETING),
    ("any edibles?", Intent.PRODUCTS), ("what do you recommend", Intent.PRODUCTS), ("lol ok", Intent.OTHER),
    ("", Intent.GREETING),
])
def test_classify(text: str, intent: Intent) -> None:
    assert classify(text) is intent


def test_categories_and_names() -> None:
    assert mentioned_categories("got any carts or gummies?") == ["vapes", "edibles"]
    assert name_from_reply("I'm maría") == "María"
    assert name_from_reply("POINTS") is None and name_from_reply("🌿") is None and name_from_reply("x" * 40) is None


def test_points_are_floored_decimals() -> None:
    rules = LoyaltyRules()
    assert order_points(Decimal("45.99"), rules) == 45
    assert order_points(Decimal("0.99"), rules) == 0
    assert order_points(Decimal("-10"), rules) == 0
    assert order_points(Decimal("10.00"), LoyaltyRules(Decimal("1.5"))) == 15
    entries = order_entries("T1", Decimal("45.99"), customer_id=7, customer_earns=True, budtender_person_id=3,
                            rules=rules, now=NOW)
    assert [(e.key, e.delta) for e in entries] == [("order:T1:customer", 45), ("order:T1:budtender", 450)]
    assert [(e.key, e.delta) for e in reversal_entries(entries, NOW)] == [
        ("refund:T1:customer", -45), ("refund:T1:budtender", -450)]
    none = order_entries("T2", Decimal("20"), customer_id=7, customer_earns=False, budtender_person_id=None,
                         rules=rules, now=NOW)
    assert none == []


def test_signature_and_timestamp() -> None:
    body = b'{"a": 1}'
    t = NOW.timestamp()
    assert signature_ok("s", body, sign("s", body, t), NOW)
    assert not signature_ok("s", body + b" ", sign("s", body, t), NOW)
    assert not signature_ok("s", body, None, NOW) and not signature_ok("s", body, "", NOW)
    assert not signature_ok("s", body, sign("s", body, t - 301), NOW)  # signed too long ago: a replay
    assert timestamp_ok(str(NOW.timestamp() - 300), NOW) and not timestamp_ok(str(NOW.timestamp() - 301), NOW)
    assert not timestamp_ok("soon", NOW) and not timestamp_ok(None, NOW)


def test_event_money_is_never_float() -> None:
    _, data = parse_event(b'{"id": "e", "type": "order.created", "data": {"id": "T", "total": 45.1, '
                          b'"occurred_at": "2026-11-23T10:00:00", "items": [{"unit_price": 0.1, "quantity": 3}]}}')
    assert data.total == Decimal("45.1") and data.items[0].line_total == Decimal("0.30")  # type: ignore[union-attr]
    assert data.occurred_at.tzinfo is not None  # type: ignore[union-attr]
    with pytest.raises(PayloadError, match=r"data\.items\.0\.quantity"):
        parse_event(b'{"id": "e", "type": "order.created", "data": {"id": "T", "total": 1, '
                    b'"occurred_at": "2026-11-23T10:00:00Z", "items": [{"unit_price": 1, "quantity": -1}]}}')


def test_signatures_interoperate_with_stripes_own_library() -> None:
    """Proven against the world: Stripe's python library (stripe.WebhookSignature) verifies what
    we sign, and we verify what it signs (its documented scheme t=<unix>,v1=<HMAC of "t.body">)."""
    stripe = pytest.importorskip("stripe")
    secret = "whsec_test_secret"  # the dummy secret of stripe-python's own webhook tests
    body = b'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'
    t = int(NOW.timestamp())
    ours = sign(secret, body, t)
    assert stripe.WebhookSignature.verify_header(body.decode(), ours, secret, tolerance=None)
    assert stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=t) == ours
    theirs = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=t)
    header = theirs + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"  # other scheme: ignored
    assert signature_ok(secret, body, header, NOW)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), sign("other", body, t), secret, tolerance=None)
