"""`python main.py import shifts FILE.csv`: one-off budtender shifts from a schedule export.

Columns (matched loosely, e.g. `Employee ID`, `employee_id`): `budtender` (phone, POS employee id
or full name), `date`, `start`, `end` (times like 10:00 or 6pm, or full date-times, then `date` may
be left out), optional `store`, `timezone` (default: `[budtenders] timezone`). An end at or before
the start ends the next day. Re-importing the same file updates the same shifts.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from coaching.budtender_coach import BudtenderCoach
from coaching.budtender_shifts import local_span
from coaching.sources.csv_rows import Columns, FileRefused, ImportReport, RowError, day, read_rows
from coaching.sources.imports import parse_map
from storage.budtenders import ShiftRow

ALIASES: dict[str, list[str]] = {
    "budtender": ["employee_id", "staff_id", "budtender_id", "employee", "staff", "phone", "name", "budtender_name"],
    "date": ["day", "shift_date", "work_date"],
    "start": ["start_time", "shift_start", "clock_in", "from", "starts_at"],
    "end": ["end_time", "shift_end", "clock_out", "to", "ends_at"],
    "store": ["store_code", "location", "shop"],
    "timezone": ["tz", "time_zone"],
}
REQUIRED: list[str | tuple[str, ...]] = ["budtender", "start", "end"]

_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M%p", "%I %p", "%I%p")


def parse_time(text: str, what: str) -> time:
    t = text.strip().upper()
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(t, fmt).time()
        except ValueError:
            continue
    raise RowError(f"{what} {text!r} is not a time (use 10:00 or 6pm)")


def parse_moment(text: str, what: str, tz: ZoneInfo) -> datetime | None:
    """A full date-time in the cell, or None when it holds only a time."""
    t = text.strip()
    if len(t) < 8 or not any(sep in t for sep in "-/"):
        return None
    try:
        value = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"{what} {text!r} is not a date-time") from None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


async def import_shifts_file(coach: BudtenderCoach, path: Path, *, overrides: list[str] | None = None,
                             dry_run: bool = False, progress: bool | None = None) -> ImportReport:
    report = ImportReport("shifts", str(path))
    try:
        header, rows = read_rows(path, progress=progress, desc="shifts")
        cols = Columns.resolve(header, ALIASES, REQUIRED, parse_map(overrides or []))
    except (FileRefused, ValueError) as exc:
        report.notes.append(f"refused: {exc}")
        return report
    known: dict[str, int | None] = {}
    out: list[ShiftRow] = []
    for line, cells in rows:
        report.read += 1
        try:
            ref = cols.get(cells, "budtender")
            if not ref:
                raise RowError("budtender is empty")
            if ref not in known:
                known[ref] = await coach.resolve_budtender(ref)
            pid = known[ref]
            if pid is None:
                raise RowError(f"unknown budtender {ref!r} (import staff first, or use a phone number)")
            tz_name = cols.get(cells, "timezone") or coach.tz
            try:
                tz = ZoneInfo(tz_name)
            except (KeyError, ValueError):
                raise RowError(f"unknown time zone {tz_name!r}") from None
            start_text, end_text = cols.get(cells, "start"), cols.get(cells, "end")
            starts, ends = parse_moment(start_text, "start", tz), parse_moment(end_text, "end", tz)
            if starts is None or ends is None:
                when = day(cols.get(cells, "date"))
                if when is None:
                    raise RowError("date is empty (or give full date-times in start and end)")
                starts, ends = local_span(when, parse_time(start_text, "start"), parse_time(end_text, "end"),
                                          tz.key)
            if ends <= starts:
                raise RowError("end is not after start")
            if ends - starts > timedelta(hours=16):
                raise RowError("a shift longer than 16 hours")
            out.append(ShiftRow(pid, starts, ends, cols.get(cells, "store") or None, "import"))
        except RowError as exc:
            report.skip(line, str(exc))
    if not dry_run and out:
        report.written = await coach.repo.upsert_shifts(out, coach.app.clock.now())
    elif dry_run:
        report.notes.append(f"dry run: {len(out)} shifts valid, nothing written")
    return report
