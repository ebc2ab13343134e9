"""A deal and what happened on it, as plain data shared by storage, sources and coaching.

No behaviour and no SQL: the CRM source builds these, storage persists them, coaching measures
them. They live under storage so that dependencies keep pointing one way (coaching → storage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class EventKind(StrEnum):
    CALL = "call"
    MESSAGE = "message"
    STAGE_CHANGE = "stage_change"
    TASK = "task"


class DealStatus(StrEnum):
    ACTIVE = "active"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class DealEvent:
    """One thing that happened on a deal. Fields unused by a kind stay None.

    call: `duration_s`, `direction` ("in"/"out"); message: `direction`, `text`;
    stage_change: `from_stage`, `to_stage`; task: `text`, `due_at`, `done`, `done_at`.
    """

    kind: EventKind
    at: datetime
    duration_s: int | None = None
    direction: str | None = None
    text: str | None = None
    from_stage: str | None = None
    to_stage: str | None = None
    due_at: datetime | None = None
    done: bool = False
    done_at: datetime | None = None
    key: str | None = None
    """Stable id from the source (CRM note id, import row) so re-imports do not duplicate."""


@dataclass(slots=True)
class Deal:
    id: int
    name: str
    created_at: datetime
    stage: str = ""
    budget: Decimal = Decimal("0")
    currency: str = "USD"
    status: DealStatus = DealStatus.ACTIVE
    owner_ref: str | None = None
    """The CRM's id or name for the responsible manager, mapped to a person in storage."""
    person_id: int | None = None
    contact: str | None = None
    pipeline: str | None = None
    source: str = "import"
    events: list[DealEvent] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status is DealStatus.ACTIVE
