"""Words for the rule-based deal analysis, in each supported language.

Kept apart from the rules themselves so a translator edits one file; a locale that is missing
here falls back to English. Placeholders are `str.format` fields filled from the metrics.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from coaching.deals import Reason

RULE_TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "assessment": {
            "high": "This deal needs attention today: {why}.",
            "medium": "The deal is moving, but there are warning signs: {why}.",
            "low": "The deal is on track: regular contact and no overdue tasks.",
        },
        "reason": {
            Reason.INACTIVE: "no activity for {days} days",
            Reason.LONG_INACTIVE: "silent for {days} days",
            Reason.OVERDUE_TASKS: "{overdue} overdue task(s)",
            Reason.LARGE_AND_STALE: "a large budget ({budget}) is going cold",
            Reason.STUCK_IN_STAGE: "{stage_days} days in the stage “{stage}”",
            Reason.NO_CONTACT: "no call or message with the client yet",
            Reason.NO_CALLS: "no calls, only written contact",
            Reason.MOVED_BACK: "the deal moved back in the funnel",
            Reason.LOW_COMPLETION: "only {completion}% of tasks done",
            Reason.NO_NEXT_STEP: "no next step is scheduled",
        },
        "strength": {
            "calls": "Regular calls: {calls} calls, {minutes} min in total",
            "moves": "The deal moves through the funnel ({moves} stage changes)",
            "tasks": "Tasks are kept: {completion}% done",
            "recent": "Recent contact ({days} days ago)",
        },
        "rec": {
            "call_today": ("Call the client today", "{why}", "Open with something of value: a case, a new offer or an "
                           "answer to their last question, then agree on a date for the next step"),
            "close_tasks": ("Close or reschedule the overdue tasks", "Overdue tasks mean promises to the client "
                            "that were not kept", "Do what was promised today or tell the client the new date"),
            "unstick": ("Move the deal out of “{stage}”", "{stage_days} days in one stage usually means a hidden "
                        "objection", "Ask directly what stops the decision and who else decides"),
            "first_contact": ("Make the first call", "Nobody has spoken to the client yet", "Call, qualify the need "
                              "and budget, and book a meeting"),
            "add_call": ("Replace a message with a call", "Calls move deals faster than written contact",
                         "Suggest a 10-minute call at a time that suits the client"),
            "next_step": ("Schedule the next step", "A deal without a next step drifts", "Create a task with a "
                          "date and agree on it with the client"),
            "keep": ("Keep the rhythm", "The deal is healthy", "Confirm the next step and the decision date"),
        },
        "phrases": {
            "revive": "“{contact}, I have prepared something useful for you about {deal} — do you have 5 minutes "
                      "today?”",
            "objection": "“What would need to be true for you to decide this week?”",
            "next": "“Shall we fix the next step now so nothing gets lost?”",
        },
        "plan": {
            "today": "Today: call the client and agree on the next step",
            "tasks": "Today: close or reschedule the overdue tasks",
            "send": "Tomorrow: send a summary and the updated offer",
            "follow": "In 2–3 days: check the decision and book the meeting",
        },
        "client": "Hello",
    },
    "ru": {
        "assessment": {
            "high": "Сделке нужно внимание сегодня: {why}.",
            "medium": "Сделка движется, но есть тревожные признаки: {why}.",
            "low": "Сделка идёт по плану: регулярный контакт и нет просроченных задач.",
        },
        "reason": {
            Reason.INACTIVE: "нет активности {days} дн.",
            Reason.LONG_INACTIVE: "тишина уже {days} дн.",
            Reason.OVERDUE_TASKS: "просроченных задач: {overdue}",
            Reason.LARGE_AND_STALE: "крупный бюджет ({budget}) остывает",
            Reason.STUCK_IN_STAGE: "{stage_days} дн. на этапе «{stage}»",
            Reason.NO_CONTACT: "ещё не было ни звонка, ни сообщения клиенту",
            Reason.NO_CALLS: "нет звонков, только переписка",
            Reason.MOVED_BACK: "сделка откатилась назад по воронке",
            Reason.LOW_COMPLETION: "выполнено только {completion}% задач",
            Reason.NO_NEXT_STEP: "не запланирован следующий шаг",
        },
        "strength": {
            "calls": "Регулярные созвоны: {calls} звонков, {minutes} мин",
            "moves": "Сделка движется по воронке ({moves} смен этапа)",
            "tasks": "Задачи выполняются: {completion}%",
            "recent": "Недавний контакт ({days} дн. назад)",
        },
        "rec": {
            "call_today": ("Позвонить клиенту сегодня", "{why}", "Начать с ценности: кейс, новое предложение или "
                           "ответ на последний вопрос, затем договориться о дате следующего шага"),
            "close_tasks": ("Закрыть или перенести просроченные задачи", "Просроченная задача — это невыполненное "
                            "обещание клиенту", "Сделать обещанное сегодня или сообщить клиенту новый срок"),
            "unstick": ("Вывести сделку с этапа «{stage}»", "{stage_days} дн. на одном этапе обычно означают скрытое "
                        "возражение", "Прямо спросить, что мешает решению и кто ещё его принимает"),
            "first_contact": ("Сделать первый звонок", "С клиентом ещё никто не говорил", "Позвонить, выявить "
                              "потребность и бюджет, назначить встречу"),
            "add_call": ("Заменить сообщение звонком", "Звонки двигают сделку быстрее переписки",
                         "Предложить 10-минутный созвон в удобное клиенту время"),
            "next_step": ("Запланировать следующий шаг", "Сделка без следующего шага дрейфует",
                          "Создать задачу с датой и согласовать её с клиентом"),
            "keep": ("Сохранить ритм", "Сделка в хорошем состоянии", "Подтвердить следующий шаг и дату решения"),
        },
        "phrases": {
            "revive": "«{contact}, я подготовил для вас полезное предложение по «{deal}» — найдётся 5 минут "
                      "сегодня?»",
            "objection": "«Что должно быть, чтобы вы могли принять решение на этой неделе?»",
            "next": "«Давайте сразу зафиксируем следующий шаг, чтобы ничего не потерялось?»",
        },
        "plan": {
            "today": "Сегодня: позвонить клиенту и договориться о следующем шаге",
            "tasks": "Сегодня: закрыть или перенести просроченные задачи",
            "send": "Завтра: отправить резюме и обновлённое КП",
            "follow": "Через 2–3 дня: уточнить решение и назначить встречу",
        },
        "client": "Здравствуйте",
    },
}


def lang(locale: str | None) -> str:
    """'ru_RU' → 'ru'; anything unsupported → 'en'."""
    code = (locale or "en").replace("-", "_").split("_")[0].lower()
    return code if code in RULE_TEXT else "en"


CURRENCY = {"RUB": "₽", "USD": "$", "EUR": "€", "GBP": "£"}


def money(value: Decimal, currency: str, locale: str) -> str:
    """'$180,000' in English, '4 500 000 ₽' in Russian."""
    symbol = CURRENCY.get(currency.upper(), currency.upper())
    amount = f"{value:,.0f}"
    if lang(locale) == "ru":
        return f"{amount.replace(',', ' ')} {symbol}"
    return f"{symbol}{amount}" if symbol in {"$", "€", "£"} else f"{amount} {symbol}"
