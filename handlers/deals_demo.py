"""Demo data for deal coaching: two sales managers (English and Russian) and their deals.

Times are relative to the first start, so the demo always has a deal gone quiet, a deal with an
overdue task, a fresh lead nobody has called, a healthy deal and one high-priority deal each.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from bot.app import App
from bot.model import Address, Person
from coaching.deals import Deal, DealEvent, DealStatus, EventKind
from coaching.roles import Role
from storage.deals import DealRepo

MANAGERS = (
    ("Alex Morgan", "100001", "en", "America/New_York", "demo-sales-1"),
    ("Ирина Соколова", "100002", "ru", "Europe/Moscow", "demo-sales-2"),
)


def _call(at: datetime, minutes: int, direction: str = "out") -> DealEvent:
    return DealEvent(EventKind.CALL, at, duration_s=minutes * 60, direction=direction)


def _msg(at: datetime, text: str, direction: str = "out") -> DealEvent:
    return DealEvent(EventKind.MESSAGE, at, direction=direction, text=text)


def _stage(at: datetime, a: str, b: str) -> DealEvent:
    return DealEvent(EventKind.STAGE_CHANGE, at, from_stage=a, to_stage=b)


def _task(at: datetime, text: str, due: datetime, done_at: datetime | None = None) -> DealEvent:
    return DealEvent(EventKind.TASK, at, text=text, due_at=due, done=done_at is not None, done_at=done_at)


def demo_deals(now: datetime) -> list[Deal]:
    def ago(days: float, hours: float = 0) -> datetime:
        return now - timedelta(days=days, hours=hours)

    en, ru = "demo-sales-1", "demo-sales-2"
    return [
        Deal(5001, "Acme Logistics — fleet telematics", ago(20), "Negotiation", Decimal("180000"), "USD",
             owner_ref=en, contact="Dana Whitfield", source="demo", events=[
                 _call(ago(19), 25), _stage(ago(18), "Qualification", "Proposal"), _call(ago(15), 40),
                 _msg(ago(14), "Sent the proposal and the ROI sheet"), _stage(ago(12), "Proposal", "Negotiation"),
                 _call(ago(8), 15, "in"), _task(ago(8), "Send revised pricing for 120 vehicles", ago(5))]),
        Deal(5002, "Brightside Dental — CRM rollout", ago(10), "Proposal", Decimal("24000"), "USD",
             owner_ref=en, contact="Dr. Priya Shah", source="demo", events=[
                 _call(ago(9), 20), _stage(ago(7), "Qualification", "Proposal"), _msg(ago(3), "Demo recording"),
                 _call(ago(1), 30, "in"), _task(ago(1), "Follow-up call on the pilot", now + timedelta(days=1)),
                 _task(ago(6), "Send the case study", ago(5), done_at=ago(5, 2))]),
        Deal(5003, "Northwind Cafés — POS for 6 locations", ago(6), "Qualification", Decimal("42000"), "USD",
             owner_ref=en, contact="Marco Bellini", source="demo", events=[
                 _msg(ago(6), "Thanks for your interest, here is our brochure"),
                 _msg(ago(4), "Can we book a call this week?", "in")]),
        Deal(5004, "Keystone Realty — lead generation", ago(2), "New lead", Decimal("12500"), "USD",
             owner_ref=en, contact="Sam Okafor", source="demo"),
        Deal(5005, "Harbor Fitness — annual plan", ago(30), "Won", Decimal("9600"), "USD", DealStatus.WON,
             owner_ref=en, source="demo", events=[_call(ago(29), 20), _stage(ago(20), "Negotiation", "Won")]),
        Deal(6001, "Поставка оборудования ООО «Рога и Копыта»", ago(12), "Переговоры", Decimal("4500000"), "RUB",
             owner_ref=ru, contact="Иван Петрович", source="demo", events=[
                 _call(ago(12), 15), _stage(ago(11), "Квалификация", "Переговоры"), _call(ago(9), 20),
                 _msg(ago(8), "Отправил КП"), _msg(ago(7), "Получили, изучаем", "in"), _call(ago(5), 10),
                 _msg(ago(4), "Напоминаю о встрече на следующей неделе"),
                 _task(ago(4), "Согласовать дату демонстрации", ago(2))]),
        Deal(6002, "Внедрение CRM для «СтройМаркет»", ago(5), "Предложение", Decimal("90000"), "RUB",
             owner_ref=ru, contact="Ольга Смирнова", source="demo", events=[
                 _call(ago(5), 30), _stage(ago(3), "Квалификация", "Предложение"), _call(ago(0, 5), 25, "in"),
                 _task(ago(0, 5), "Отправить договор", now + timedelta(days=2))]),
        Deal(6003, "Обучение персонала «Вектор»", ago(9), "Квалификация", Decimal("80000"), "RUB",
             owner_ref=ru, contact="Сергей Волков", source="demo", events=[
                 _msg(ago(9), "Добрый день! Направляю программу обучения"), _call(ago(6), 5)]),
    ]


async def seed_demo(app: App) -> None:
    now = app.clock.now()
    for name, tg, locale, tz, ext in MANAGERS:
        await app.people.add(
            Person(None, name, frozenset({Role.SALES_MANAGER}), [Address("telegram", tg)], tz, locale, ext), now
        )
    await DealRepo(app.db).upsert(demo_deals(now), now)
