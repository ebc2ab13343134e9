"""The plain data of chatter coaching: one chatter's numbers for one day, and the KPIs derived from them.

Money is Decimal; rates are fractions (0.125 for 12.5 %); reply time is seconds. A value the export
did not carry is None, never 0, so a missing column cannot pull a score down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from bot.i18n import N_
from storage.chatters import DAY_OFF_HOURS, Chatter, DayMetrics

__all__ = ["DAY_OFF_HOURS", "Chatter", "CsvRow", "DayMetrics", "Kpi"]


class Kpi(StrEnum):
    SALES_PER_HR = "sales_per_hr"
    CVR = "cvr"
    UNLOCK_RATE = "unlock_rate"
    GOLDEN_RATIO = "golden_ratio"
    MSGS_PER_HR = "msgs_per_hr"
    REPLY_TIME = "reply_time"


KPI_LABELS: dict[Kpi, str] = {
    Kpi.SALES_PER_HR: N_("Sales/hr"),
    Kpi.CVR: N_("CVR"),
    Kpi.UNLOCK_RATE: N_("Unlock rate"),
    Kpi.GOLDEN_RATIO: N_("Golden ratio"),
    Kpi.MSGS_PER_HR: N_("Msg/hr"),
    Kpi.REPLY_TIME: N_("Reply time"),
}

LOWER_IS_BETTER = frozenset({Kpi.REPLY_TIME})


@dataclass(slots=True)
class CsvRow:
    """One line of an Inflow export, parsed but not yet matched to a chatter."""

    name: str
    line: int
    day: date | None = None
    sales: Decimal | None = None
    cvr: float | None = None
    unlock_rate: float | None = None
    golden_ratio: float | None = None
    msgs_per_hr: float | None = None
    reply_time_s: float | None = None
    fans_chatted: int | None = None
    ppvs_sent: int | None = None
    ppvs_unlocked: int | None = None
    hours: float | None = None
    group: str | None = None
