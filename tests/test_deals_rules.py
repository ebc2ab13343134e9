"""Metrics, stale rules, priority rules, the rule-based coach and the Telegram formats (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coaching.deal_coach import CoachResult, DealAnalysis, Source, fingerprint, rule_analysis
from coaching.deal_format import e, format_alert, format_brief, format_detailed, format_summary
from coaching.deals import DealRules, Priority, Reason, assess, assess_all, compute_metrics, is_stale, stale_deals
from tests.deals_support import NOW, ago, call, deal, msg, portfolio, stage, task


def test_metrics_of_a_hand_built_deal() -> None:
    d = deal(1, "ann", call(10, 30), msg(8), stage(7, "Qualification", "Proposal"), call(4, 15),
             task(6, 5, done=True), task(3, 1), task(2, -3), created=12)
    m = compute_metrics(d, NOW, stage_order=["Qualification", "Proposal", "Negotiation"])
    assert m.age_days == pytest.approx(12)
    assert m.days_since_activity == pytest.approx(4)  # the last call; the done task was 5 days ago
    assert (m.calls, m.messages, m.communications) == (2, 1, 3)
    assert m.call_minutes == pytest.approx(45)
    assert m.avg_contact_gap_days == pytest.approx(3)  # contacts at -10, -8, -4: 6 days over 2 gaps
    assert (m.funnel_moves, m.backward_moves) == (1, 0)
    assert m.days_in_stage == pytest.approx(7)
    assert (m.tasks_total, m.tasks_done, m.overdue_tasks, m.open_tasks) == (3, 1, 1, 2)
    assert m.task_completion_rate == pytest.approx(1 / 3)


def test_a_deal_with_no_events_is_measured_from_its_creation() -> None:
    m = compute_metrics(deal(1, "ann", created=2), NOW)
    assert m.days_since_activity == pytest.approx(2)
    assert m.avg_contact_gap_days is None and m.task_completion_rate is None
    assert m.days_in_stage == pytest.approx(2)


def test_backward_move_needs_the_stage_order() -> None:
    d = deal(1, "ann", stage(5, "Proposal", "Qualification"), stage_name="Qualification")
    assert compute_metrics(d, NOW).backward_moves == 0
    assert compute_metrics(d, NOW, ["Qualification", "Proposal"]).backward_moves == 1


@pytest.mark.parametrize(
    ("events", "days", "stale"),
    [
        ((call(2),), 3, False),
        ((call(3),), 3, True),  # exactly N days is stale
        ((call(5),), 6, False),
        ((call(1), task(2, 1)), 3, True),  # an overdue task makes it stale whatever the silence
        ((call(1), task(2, 1, done=True)), 3, False),
        ((call(1), task(1, -1)), 3, False),  # due tomorrow is not overdue
    ],
)
def test_stale_rules(events: tuple, days: float, stale: bool) -> None:
    assert is_stale(compute_metrics(deal(1, "ann", *events), NOW), days) is stale


def test_priority_rules() -> None:
    rules = DealRules()
    high_silent = assess(deal(1, "ann", call(8)), NOW, rules)
    assert high_silent.priority is Priority.HIGH and Reason.LONG_INACTIVE in high_silent.reasons
    high_overdue = assess(deal(2, "ann", call(4), task(4, 1)), NOW, rules)
    assert high_overdue.priority is Priority.HIGH
    large = assess(deal(3, "ann", call(3), task(3, -2), budget="250000"), NOW, rules)
    assert large.priority is Priority.HIGH and Reason.LARGE_AND_STALE in large.reasons
    medium = assess(deal(4, "ann", call(4), task(4, -2)), NOW, rules)
    assert medium.priority is Priority.MEDIUM
    overdue_but_active = assess(deal(5, "ann", call(1), task(2, 1)), NOW, rules)
    assert overdue_but_active.priority is Priority.MEDIUM
    low = assess(deal(6, "ann", call(1), task(1, -2), created=5), NOW, rules)
    assert low.priority is Priority.LOW
    never = assess(deal(7, "ann", created=2), NOW, rules)
    assert Reason.NO_CONTACT in never.reasons and never.priority is Priority.MEDIUM


def test_assess_all_orders_by_priority_and_skips_closed_deals() -> None:
    items = assess_all(portfolio(), NOW)
    assert [a.deal.id for a in items] == [201, 101, 102, 103]
    assert [a.priority for a in items] == [Priority.HIGH, Priority.HIGH, Priority.MEDIUM, Priority.LOW]
    assert [a.deal.id for a in stale_deals(portfolio(), NOW, days=7)] == [201, 101]


@pytest.mark.parametrize("locale", ["en", "ru", "de"])
def test_rule_analysis_fills_the_same_model_in_the_managers_language(locale: str) -> None:
    a = assess(portfolio()[0], NOW)
    an = rule_analysis(a, locale)
    assert isinstance(an, DealAnalysis)
    assert an.priority is Priority.HIGH and an.recommendations and an.plan and an.phrases
    assert 0 <= an.conversion_probability <= 100
    if locale == "ru":
        assert "Позвонить" in an.recommendations[0].action
    else:
        assert an.recommendations[0].action == "Call the client today"
    assert rule_analysis(a, locale) == an  # deterministic


def test_fingerprint_changes_with_the_deal_not_with_the_hour() -> None:
    d = portfolio()[0]
    a1 = assess(d, NOW)
    same_day = assess(d, ago(-0.1))
    assert fingerprint(a1, "en") == fingerprint(same_day, "en")
    assert fingerprint(a1, "en") != fingerprint(a1, "ru")
    d.events.append(call(0))
    assert fingerprint(assess(d, NOW), "en") != fingerprint(a1, "en")


def _result(a, locale: str = "en", source: Source = Source.RULES) -> CoachResult:
    return CoachResult(rule_analysis(a, locale), source, NOW, "fp")


def test_detailed_format_has_every_section_and_the_label() -> None:
    a = assess(portfolio()[0], NOW)
    text = format_detailed(a, _result(a), "en", "UTC", "Ann Lee")
    for part in ("🔴", "DEAL ANALYSIS", "Budget: $50,000", "Win probability", "Calls: 2", "ASSESSMENT", "CRITICAL",
                 "RECOMMENDATIONS", "🔥 TODAY", "WHAT TO SAY", "ACTION PLAN", "Rule-based analysis",
                 "02.03.2026 09:00"):
        assert part in text, part
    ru = format_detailed(a, _result(a, "ru"), "ru", "Europe/Moscow")
    assert "АНАЛИЗ СДЕЛКИ" in ru and "по правилам" in ru and "02.03.2026 12:00" in ru


def test_formats_escape_html_from_the_crm() -> None:
    d = deal(9, "ann", call(5), name="<b>Acme & Co</b> <script>")
    a = assess(d, NOW)
    for text in (format_detailed(a, _result(a), "en"), format_brief(a, _result(a), "en"),
                 format_summary([a], "en"), format_alert([a], 3, "en")):
        assert "&lt;b&gt;Acme &amp; Co&lt;/b&gt; &lt;script&gt;" in text
        assert "<script>" not in text
    assert e("a<b>&") == "a&lt;b&gt;&amp;"


def test_huge_emoji_name_formats_without_error() -> None:
    d = deal(9, "ann", call(5), name="🚀" * 5000)
    a = assess(d, NOW)
    for text in (format_detailed(a, _result(a), "en"), format_summary([a], "ru"), format_alert([a], 3, "en")):
        assert "🚀" * 199 + "…" in text and "🚀" * 200 not in text
        assert max(len(line) for line in text.splitlines()) < 1000
    assert e("line one\nline two <x>") == "line one line two &lt;x&gt;"


def test_summary_and_alert_texts() -> None:
    items = assess_all(portfolio(), NOW)
    s = format_summary(items, "en")
    assert "4 active" in s and "🔴 2 · 🟡 1 · 🟢 1" in s and "#104" not in s
    assert format_summary([], "ru") == "📊 У вас нет активных сделок."
    assert "No stale deals" in format_alert([], 5, "en")
    alert = format_alert(items[:2], 5, "en", {201: "Call the client today"})
    assert "Stale deals" in alert and "👉 Next: Call the client today" in alert
    assert Decimal("1") == Decimal("1.00")
