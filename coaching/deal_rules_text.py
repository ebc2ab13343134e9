"""Words for the rule-based deal analysis: English here, translations in the message catalog.

Kept apart from the rules themselves; `rule_text(locale)` gives the same structure in the
reader's language (bot/i18n.py; a missing language reads English). Placeholders are `str.format`
fields filled from the metrics.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot import i18n
from bot.i18n import N_
from coaching.deals import Reason

RULE_TEXT: dict[str, Any] = {
    "assessment": {
        "high": N_("This deal needs attention today: {why}."),
        "medium": N_("The deal is moving, but there are warning signs: {why}."),
        "low": N_("The deal is on track: regular contact and no overdue tasks."),
    },
    "reason": {
        Reason.INACTIVE: N_("no activity for {days} days"),
        Reason.LONG_INACTIVE: N_("silent for {days} days"),
        Reason.OVERDUE_TASKS: N_("{overdue} overdue task(s)"),
        Reason.LARGE_AND_STALE: N_("a large budget ({budget}) is going cold"),
        Reason.STUCK_IN_STAGE: N_("{stage_days} days in the stage “{stage}”"),
        Reason.NO_CONTACT: N_("no call or message with the client yet"),
        Reason.NO_CALLS: N_("no calls, only written contact"),
        Reason.MOVED_BACK: N_("the deal moved back in the funnel"),
        Reason.LOW_COMPLETION: N_("only {completion}% of tasks done"),
        Reason.NO_NEXT_STEP: N_("no next step is scheduled"),
    },
    "strength": {
        "calls": N_("Regular calls: {calls} calls, {minutes} min in total"),
        "moves": N_("The deal moves through the funnel ({moves} stage changes)"),
        "tasks": N_("Tasks are kept: {completion}% done"),
        "recent": N_("Recent contact ({days} days ago)"),
    },
    "rec": {
        "call_today": (N_("Call the client today"), "{why}",
                       N_("Open with something of value: a case, a new offer or an "
                          "answer to their last question, then agree on a date for the next step")),
        "close_tasks": (N_("Close or reschedule the overdue tasks"), N_("Overdue tasks mean promises to the client "
                        "that were not kept"), N_("Do what was promised today or tell the client the new date")),
        "unstick": (N_("Move the deal out of “{stage}”"), N_("{stage_days} days in one stage usually means a hidden "
                    "objection"), N_("Ask directly what stops the decision and who else decides")),
        "first_contact": (N_("Make the first call"), N_("Nobody has spoken to the client yet"),
                          N_("Call, qualify the need and budget, and book a meeting")),
        "add_call": (N_("Replace a message with a call"), N_("Calls move deals faster than written contact"),
                     N_("Suggest a 10-minute call at a time that suits the client")),
        "next_step": (N_("Schedule the next step"), N_("A deal without a next step drifts"), N_("Create a task with a "
                      "date and agree on it with the client")),
        "keep": (N_("Keep the rhythm"), N_("The deal is healthy"), N_("Confirm the next step and the decision date")),
    },
    "phrases": {
        "revive": N_("“{contact}, I have prepared something useful for you about {deal} — do you have 5 minutes "
                  "today?”"),
        "objection": N_("“What would need to be true for you to decide this week?”"),
        "next": N_("“Shall we fix the next step now so nothing gets lost?”"),
    },
    "plan": {
        "today": N_("Today: call the client and agree on the next step"),
        "tasks": N_("Today: close or reschedule the overdue tasks"),
        "send": N_("Tomorrow: send a summary and the updated offer"),
        "follow": N_("In 2–3 days: check the decision and book the meeting"),
    },
    "client": N_("Hello"),
}


def lang(locale: str | None) -> str:
    """'ru_RU' → 'ru'; a language without a catalog → 'en'."""
    code = i18n.lang(locale)
    return code if code in i18n.available() else "en"


def translated(texts: Any, locale: str | None) -> Any:
    """A nested dict/tuple of marked English texts, each in the reader's language."""
    if isinstance(texts, dict):
        return {k: translated(v, locale) for k, v in texts.items()}
    if isinstance(texts, tuple):
        return tuple(translated(v, locale) for v in texts)
    return i18n.t(locale, texts) if isinstance(texts, str) else texts


_rule_cache: dict[str, dict[str, Any]] = {}


def rule_text(locale: str | None) -> dict[str, Any]:
    code = lang(locale)
    if code not in _rule_cache:
        _rule_cache[code] = translated(RULE_TEXT, code)
    return _rule_cache[code]


CURRENCY = {"RUB": "₽", "USD": "$", "EUR": "€", "GBP": "£"}


def money(value: Decimal, currency: str, locale: str) -> str:
    """'$180,000' in English, '4 500 000 ₽' in Russian."""
    symbol = CURRENCY.get(currency.upper(), currency.upper())
    amount = f"{value:,.0f}"
    if lang(locale) == "ru":
        return f"{amount.replace(',', ' ')} {symbol}"
    return f"{symbol}{amount}" if symbol in {"$", "€", "£"} else f"{amount} {symbol}"
