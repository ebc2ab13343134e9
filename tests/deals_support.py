"""Shared pieces for the deal tests: hand-built deals, a scripted AI and a flow with two managers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from bot.model import Person
from coaching.deal_coach import DealAnalysis, Recommendation, Urgency
from coaching.deals import Deal, DealEvent, DealStatus, EventKind, Priority
from coaching.roles import Role
from storage.deals import DealRepo
from tests.flows import Flow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ago(days: float, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


def call(days: float, minutes: int = 10) -> DealEvent:
    return DealEvent(EventKind.CALL, ago(days), duration_s=minutes * 60, direction="out")


def msg(days: float, text: str = "hello") -> DealEvent:
    return DealEvent(EventKind.MESSAGE, ago(days), direction="out", text=text)


def stage(days: float, a: str, b: str) -> DealEvent:
    return DealEvent(EventKind.STAGE_CHANGE, ago(days), from_stage=a, to_stage=b)


def task(days: float, due_days_ago: float, done: bool = False, text: str = "send offer") -> DealEvent:
    return DealEvent(EventKind.TASK, ago(days), text=text, due_at=ago(due_days_ago), done=done,
                     done_at=ago(due_days_ago) if done else None)


def deal(id: int, owner: str, *events: DealEvent, created: float = 20, budget: str = "10000", name: str | None = None,
         status: DealStatus = DealStatus.ACTIVE, stage_name: str = "Proposal") -> Deal:
    return Deal(id, name or f"Deal {id}", ago(created), stage_name, Decimal(budget), "USD", status, owner_ref=owner,
                contact="Pat", events=list(events))


def portfolio() -> list[Deal]:
    """Ann (ext ann) has a high, a medium stale, a fresh and a won deal; Boris (ext boris) has one."""
    return [
        # high: silent 8 days, overdue task
        deal(101, "ann", call(15, 30), stage(12, "Qualification", "Proposal"), call(8, 5), task(8, 4),
             budget="50000"),
        # medium: silent 5 days (a task done then), no overdue
        deal(102, "ann", msg(10), call(6, 12), task(6, 5, done=True), created=10),
        # low: active yesterday with an open task
        deal(103, "ann", call(3, 20), stage(2, "Qualification", "Proposal"), call(1, 15),
             task(1, -2), created=5),
        # won: never listed
        deal(104, "ann", call(30), created=40, status=DealStatus.WON),
        # Boris's deal, silent 9 days
        deal(201, "boris", call(9), created=12),
    ]


@dataclass
class ScriptedAI:
    """Stands in for coaching.ai.AiClient: answers from a script and records each request."""

    script: list[Any] = field(default_factory=list)
    enabled: bool = True
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def structured(self, schema: type[BaseModel], system: str, user: str, *,
                         timeout: float | None = None, label: str = "") -> BaseModel | None:
        self.requests.append((system, user))
        item = self.script.pop(0) if self.script else good_analysis()
        if isinstance(item, Exception):
            raise item
        return item


def good_analysis(priority: Priority = Priority.HIGH) -> DealAnalysis:
    return DealAnalysis(
        assessment="Big deal <b>cooling</b> & needs a call.",
        strengths=["Good discovery call"],
        concerns=["Long silence"],
        red_flags=["Overdue pricing task"],
        priority=priority,
        recommendations=[
            Recommendation(action="Call Dana", why="8 days silent", how="Offer the revised price",
                           urgency=Urgency.TODAY),
            Recommendation(action="Book a demo", why="Decision stage", how="Two slots", urgency=Urgency.THIS_WEEK),
            Recommendation(action="Prepare a case", why="Proof", how="Similar fleet", urgency=Urgency.PLANNED),
        ],
        phrases=["Dana, I have the revised pricing ready."],
        plan=["Call today", "Send the case tomorrow"],
        conversion_probability=55,
    )


async def make_flow(database_url: str | None = None, start: datetime = NOW, **settings: Any
                    ) -> tuple[Flow, Person, Person]:
    flow = await Flow.create(plugins=["handlers.sales_managers"], start=start, database_url=database_url, **settings)
    ann = await flow.app.people.by_external_id("ann")
    boris = await flow.app.people.by_external_id("boris")
    if ann is None:
        ann = await flow.person("Ann Lee", {Role.SALES_MANAGER}, telegram="100001")
        ann.external_id = "ann"
        await flow.app.people.update(ann, flow.clock.now())
        boris = await flow.person("Борис Орлов", {Role.SALES_MANAGER}, telegram="100002", locale="ru",
                                  timezone="Europe/Moscow")
        boris.external_id = "boris"
        await flow.app.people.update(boris, flow.clock.now())
        await DealRepo(flow.app.db).upsert(portfolio(), flow.clock.now())
    assert boris is not None
    return flow, ann, boris


def set_ai(flow: Flow, ai: ScriptedAI | None) -> None:
    flow.app.deps["deal_desk"].coach.ai = ai
