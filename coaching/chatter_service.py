"""Chatter coaching as team leads and jobs use it: ingest, look up, brief, log.

The glue between the pure parts (CSV reading, name matching, scoring, cards, briefings) and the
store. Handlers, scheduled jobs and the CLI all go through this one class, so an upload in Slack,
`python main.py ingest` and the morning job behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.i18n import N_, Msg, date_text, t, tn
from channels.markup import esc
from coaching.briefings import Briefing, briefing
from coaching.cards import NO_TEAM, STREAK_LOOKBACK, TREND_DAYS, Card, Scorer, TeamView, build_team, fmt_duration
from coaching.chatter_config import ChattersConfig, LeadConfig
from coaching.chatter_metrics import DAY_OFF_HOURS, Chatter, CsvRow
from coaching.dashboard import render_dashboard
from coaching.names import How, NameMatch, NameMatcher, describe_unplaced, normalize_name, short_names, unknown_name
from coaching.sources.hubstaff import looks_like_hubstaff, parse_hubstaff_csv
from coaching.sources.inflow_csv import CsvError, parse_inflow_csv
from storage.chatters import COACHING, EXPORT, HUBSTAFF, REPORT, ChatterRepo, DayMetrics, LogEntry

log = logging.getLogger(__name__)

_PRECEDENCE = {How.ALIAS: 0, How.EXACT: 0, How.SWAPPED: 1, How.CONTAINED: 2, How.PREFIX: 3, How.FUZZY: 4}
"""When two rows name one chatter, the surer match wins."""
_LOOSE = frozenset({How.PREFIX, How.FUZZY})
"""Matches shown back to the uploader, so a wrong guess is noticed."""

_DATE_IN_NAME = re.compile(r"(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})")

EXPORT_COLUMNS = ("sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s", "fans_chatted",
                  "ppvs_sent", "ppvs_unlocked")
"""The numbers only the Inflow export carries: a stored day with any of them came from an export."""

# -- what a team lead reads after an upload ----------------------------------------------------
# Every sentence of an upload's reply, in one place (the message catalog takes them from here).
# Names from files and from the roster go in escaped (`esc`): replies are neutral markup.

UPDATED_FROM_EARLIER = N_(" ({n} updated from an earlier upload)")
DAY_OFF_LINE = N_("{n} on a day off (under 1 hour worked).")
IGNORED_LINE = N_("{n} not active, ignored.")
TWICE = N_("{chatter} is in the file twice (“{kept}” and “{dropped}”); I kept “{kept}”.")
LOOSE = N_("Matched loosely: {pairs}{more}.")
LOOSE_MORE = N_(" and {n} more")
ALIAS_HINT = N_('To teach me a name once: <code>alias "{raw}" = "{target}"</code>')
ALIAS_TARGET = N_("Their Name")
DECIMAL_COMMAS = N_("Read with decimal commas (0,125 = 0.125; 1.234,50 = 1,234.50).")
CHANGED = N_("What changed:")
CHANGE = "• {who}: {what}"
NOTHING_CHANGED = N_("Nothing changed from the earlier upload.")
HUBSTAFF_KEPT = N_("Hours for {names} stay as Hubstaff tracked them (the export's hours don't override Hubstaff).")
NOT_IN_THIS_FILE = N_("In the earlier upload but not in this one, so unchanged: {names}.")
HOURS_UPDATED = N_("Hours:")
HOURS_NOW = N_("{hours} h")
NOT_IN_FILE = N_("Not in the file, hours unchanged: {names}.")
AND_N_MORE = N_(" and {n} more")
N_MORE = N_("And {n} more.")
SOURCE_EXPORT = "export"
SOURCE_HUBSTAFF = "hubstaff"

LABELS = {"sales": N_("sales"), "cvr": N_("CVR"), "unlock_rate": N_("unlock rate"), "golden_ratio": N_("golden ratio"),
          "msgs_per_hr": N_("msg/hr"), "reply_time_s": N_("reply time"), "fans_chatted": N_("fans"),
          "ppvs_sent": N_("PPVs sent"), "ppvs_unlocked": N_("PPVs unlocked"), "hours": N_("hours"),
          "group": N_("group")}

# What the coaching log and aliases answer.
ALIAS_EMPTY = N_("The name to remember is empty.")
ALIAS_SET = N_("Got it: “{alias}” is {chatter}. I'll remember that in every upload.")
LOG_EMPTY = N_("Add what you talked about, e.g. <code>log Ana talked about PPV pricing</code>.")
LOGGED = N_("Logged coaching for {chatter}. I'll count from today for “days since last coaching”.")
REPORTED = N_("Report on {chatter} saved. Thanks — the COO sees it on the dashboard.")
MAX_LISTED = 12


def fmt_value(column: str, value: Any, locale: str | None = None) -> str:
    """A stored value as a team lead reads it in a change line (a group's name escaped)."""
    if value is None:
        return "–"
    if column == "group":
        return esc(value)
    if column == "sales":
        return f"${value:,.2f}"
    if column in {"cvr", "unlock_rate", "golden_ratio"}:
        return _trim(f"{float(value) * 100:.1f}") + "%"
    if column == "reply_time_s":
        return fmt_duration(float(value), locale)
    if isinstance(value, int | str):
        return str(value)
    return _trim(f"{float(value):.2f}")


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9
    return bool(a == b)


def _listed(names: Sequence[str], locale: str | None, limit: int = MAX_LISTED) -> str:
    more = t(locale, AND_N_MORE, n=len(names) - limit) if len(names) > limit else ""
    return ", ".join(esc(n) for n in names[:limit]) + more


@dataclass(slots=True)
class Change:
    """What one upload changed for one chatter-day: (column, before, after) triples."""

    chatter: str
    day: date
    columns: list[tuple[str, Any, Any]]


@dataclass(slots=True)
class IngestSummary:
    days: list[date]
    saved: int = 0
    updated: int = 0
    day_off: int = 0
    ignored: int = 0
    """Rows for chatters who are not active (or not on any of our teams)."""
    unplaced: list[NameMatch] = field(default_factory=list)
    loose: list[tuple[str, str]] = field(default_factory=list)
    """(name in the file, chatter) placed by a loose rule, shown so a wrong guess is noticed."""
    source: str = SOURCE_EXPORT
    doubles: list[tuple[str, str, str]] = field(default_factory=list)
    """(chatter, name kept, name dropped) when two rows of one day land on the same chatter."""
    decimal: str = "."
    changes: list[Change] = field(default_factory=list)
    """What a re-upload changed, per chatter-day that was stored before."""
    hubstaff_kept: list[str] = field(default_factory=list)
    """Chatters whose hours in the file differ from Hubstaff's, which stay."""
    not_in_this_file: list[str] = field(default_factory=list)
    """Chatters of an earlier upload of the same day(s) that this one leaves out (left unchanged)."""
    hours: list[tuple[str, float | None, float]] = field(default_factory=list)
    """Hubstaff: (chatter, hours before, hours now) for everyone the file names."""
    not_in_file: list[str] = field(default_factory=list)
    """Hubstaff: active chatters the file doesn't name (their hours are left alone)."""
    short: dict[str, str] = field(default_factory=dict)
    """Chatter name → the name to use in the reply (first names where they are unique)."""

    def _name(self, chatter: str) -> str:
        return self.short.get(chatter, chatter)

    def text(self, locale: str | None = None) -> str:
        """The reply to the upload, in neutral markup and the reader's language."""
        multi = len(self.days) > 1
        when = ", ".join(date_text(locale, d) for d in self.days[:3]) + (" …" if len(self.days) > 3 else "")
        hubstaff = self.source == SOURCE_HUBSTAFF
        updated = (t(locale, UPDATED_FROM_EARLIER, n=self.updated) if self.updated and not hubstaff else "")
        n = self.saved
        if hubstaff and multi:
            got = tn(locale, "Got the Hubstaff hours for {when}: {n} chatter-day updated.",
                     "Got the Hubstaff hours for {when}: {n} chatter-days updated.", n, when=when)
        elif hubstaff:
            got = tn(locale, "Got the Hubstaff hours for {when}: {n} chatter updated.",
                     "Got the Hubstaff hours for {when}: {n} chatters updated.", n, when=when)
        elif multi:
            got = tn(locale, "Got the export for {when}: {n} chatter-day saved{updated}.",
                     "Got the export for {when}: {n} chatter-days saved{updated}.", n, when=when, updated=updated)
        else:
            got = tn(locale, "Got the export for {when}: {n} chatter saved{updated}.",
                     "Got the export for {when}: {n} chatters saved{updated}.", n, when=when, updated=updated)
        lines = [got]
        if self.decimal == ",":
            lines.append(t(locale, DECIMAL_COMMAS))
        if hubstaff and self.hours:
            lines.append(t(locale, HOURS_UPDATED))
            for chatter, before, now in self.hours[:MAX_LISTED]:
                if before is None or _same(before, now):
                    what = t(locale, HOURS_NOW, hours=fmt_value("hours", now))
                else:
                    what = f"{t(locale, LABELS['hours'])} {fmt_value('hours', before)} → {fmt_value('hours', now)}"
                lines.append(CHANGE.format(who=esc(self._name(chatter)), what=what))
            if len(self.hours) > MAX_LISTED:
                lines.append(t(locale, N_MORE, n=len(self.hours) - MAX_LISTED))
        if self.day_off:
            lines.append(t(locale, DAY_OFF_LINE, n=self.day_off))
        if self.ignored:
            lines.append(t(locale, IGNORED_LINE, n=self.ignored))
        if self.changes:
            lines.append(t(locale, CHANGED))
            for change in self.changes[:MAX_LISTED]:
                who = esc(self._name(change.chatter)) + (f" ({date_text(locale, change.day)})" if multi else "")
                what = ", ".join(f"{t(locale, LABELS[c]) if c in LABELS else c} "
                                 f"{fmt_value(c, a, locale)} → {fmt_value(c, b, locale)}" for c, a, b in change.columns)
                lines.append(CHANGE.format(who=who, what=what))
            if len(self.changes) > MAX_LISTED:
                lines.append(t(locale, N_MORE, n=len(self.changes) - MAX_LISTED))
        elif self.updated and not hubstaff:
            lines.append(t(locale, NOTHING_CHANGED))
        if self.hubstaff_kept:
            lines.append(t(locale, HUBSTAFF_KEPT, names=_listed([self._name(n) for n in self.hubstaff_kept], locale)))
        if self.not_in_this_file:
            lines.append(t(locale, NOT_IN_THIS_FILE,
                           names=_listed([self._name(n) for n in self.not_in_this_file], locale)))
        if self.not_in_file:
            lines.append(t(locale, NOT_IN_FILE, names=_listed([self._name(n) for n in self.not_in_file], locale)))
        for chatter, kept, dropped in self.doubles[:5]:
            lines.append(t(locale, TWICE, chatter=esc(chatter), kept=esc(kept), dropped=esc(dropped)))
        if self.loose:
            more = t(locale, LOOSE_MORE, n=len(self.loose) - 5) if len(self.loose) > 5 else ""
            lines.append(t(locale, LOOSE, pairs="; ".join(f"{esc(a)} → {esc(b)}" for a, b in self.loose[:5]),
                           more=more))
        if self.unplaced:
            described = describe_unplaced(self.unplaced)
            lines.append((described.render(locale) if isinstance(described, Msg) else described) + ".")
            example = next((m for m in self.unplaced if m.candidates), self.unplaced[0])
            target = esc(example.candidates[0]) if example.candidates else t(locale, ALIAS_TARGET)
            lines.append(t(locale, ALIAS_HINT, raw=esc(example.raw), target=target))
        return "\n".join(lines)


HoursSource = Callable[[date], Awaitable[dict[str, float] | None]]
"""Tracked hours per name for a day (Hubstaff), or None when no source is configured."""


class ChatterService:
    def __init__(self, repo: ChatterRepo, config: ChattersConfig, clock: Clock,
                 hours_source: HoursSource | None = None) -> None:
        self.repo = repo
        self.config = config
        self.clock = clock
        self.hours_source = hours_source

    # -- roster and names ----------------------------------------------------------------------

    async def sync_roster(self) -> int:
        """Teams and chatters from config become the active roster (others are marked inactive)."""
        if not self.config.teams:
            return 0
        teams = {t.name: t.chatters for t in self.config.teams}
        return await self.repo.sync_roster(teams, self.clock.now(), deactivate_others=True)

    async def matcher(self, chatters: Sequence[Chatter] | None = None) -> NameMatcher:
        chatters = chatters if chatters is not None else await self.repo.chatters()
        aliases = {a: c.id for c in chatters for a in c.aliases}
        return NameMatcher({c.id: c.name for c in chatters}, aliases, cutoff=self.config.name_cutoff)

    async def find(self, name: str) -> tuple[Chatter | None, Msg | None]:
        """A chatter by any name a lead might type; or None and a sentence saying why (for the reader's language)."""
        chatters = await self.repo.chatters()
        match = (await self.matcher(chatters)).match(name)
        by_id = {c.id: c for c in chatters}
        if match.chatter_id is not None:
            return by_id[match.chatter_id], None
        return None, unknown_name(match)

    async def alias(self, alias: str, target: str, by: int | None) -> Msg:
        chatter, problem = await self.find(target)
        if chatter is None:
            assert problem is not None
            return problem
        if not normalize_name(alias):
            return Msg(ALIAS_EMPTY)
        await self.repo.add_alias(alias.strip(), chatter.id, by, self.clock.now())
        return Msg(ALIAS_SET, alias=esc(alias.strip()), chatter=esc(chatter.name))

    # -- ingest ----------------------------------------------------------------------------------

    def default_day(self) -> date:
        """Yesterday in the operations timezone: the day a morning export covers."""
        return (self.clock.now().astimezone(ZoneInfo(self.config.timezone)) - timedelta(days=1)).date()

    def day_for(self, row: CsvRow, given: date | None, filename: str | None) -> date:
        if given is not None:
            return given
        if row.day is not None:
            return row.day
        if filename:
            m = _DATE_IN_NAME.search(filename)
            if m:
                try:
                    return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                except ValueError:
                    pass
        return self.default_day()

    async def ingest_file(
        self, data: bytes | str, day: date | None = None, filename: str | None = None
    ) -> IngestSummary:
        """An Inflow export, or a Hubstaff time export (its hours then replace any others)."""
        if not looks_like_hubstaff(data, filename):
            return await self.ingest_csv(data, day, filename)
        by_day = parse_hubstaff_csv(data)
        total = IngestSummary(days=[], source=SOURCE_HUBSTAFF)
        absent: set[str] | None = None
        for when, hours in sorted(by_day.items(), key=lambda kv: kv[0] or date.min):
            part = await self.ingest_hours(hours, day or when or self.default_day())
            total.days += part.days
            total.saved += part.saved
            total.day_off += part.day_off
            total.ignored += part.ignored
            total.unplaced += part.unplaced
            total.hours += part.hours
            total.short = part.short
            absent = set(part.not_in_file) if absent is None else absent & set(part.not_in_file)
        total.not_in_file = sorted(absent or ())
        return total

    async def ingest_csv(
        self, data: bytes | str, day: date | None = None, filename: str | None = None
    ) -> IngestSummary:
        """Parse, match and store an export; raises CsvError (nothing stored) on a bad file.

        A re-upload of a day replaces that day's numbers for the chatters it names, hours included
        (unless Hubstaff gave them), and the summary lists what changed. Chatters an earlier upload
        had and this one leaves out keep their numbers, and are named.
        """
        parsed = parse_inflow_csv(data)
        chatters = await self.repo.chatters()
        matcher = await self.matcher(chatters)
        by_id = {c.id: c for c in chatters}
        our_teams = {normalize_name(c.team) for c in chatters if c.team}
        rows: dict[tuple[int, date], dict[str, Any]] = {}
        summary = IngestSummary(days=[], decimal=parsed.decimal,
                                short=short_names(c.name for c in chatters if c.active))
        seen_unplaced: set[str] = set()
        for row in parsed.rows:
            d = self.day_for(row, day, filename)
            match = matcher.match(row.name)
            if match.chatter_id is None:
                if self._worth_listing(row, match, our_teams) and normalize_name(row.name) not in seen_unplaced:
                    seen_unplaced.add(normalize_name(row.name))
                    summary.unplaced.append(match)
                else:
                    summary.ignored += 1
                continue
            chatter = by_id[match.chatter_id]
            if not chatter.active:
                summary.ignored += 1
                continue
            if match.how in _LOOSE:
                summary.loose.append((row.name, chatter.name))
            values = {c: getattr(row, c) for c in parsed.columns if c not in {"name", "day"}}
            key = (chatter.id, d)
            if key in rows:
                kept = rows[key]
                if _PRECEDENCE[match.how] < _PRECEDENCE[kept["_how"]]:
                    summary.doubles.append((chatter.name, row.name, kept["_name"]))
                else:
                    summary.doubles.append((chatter.name, kept["_name"], row.name))
                    continue
            rows[key] = {"chatter_id": chatter.id, "day": d, "_how": match.how, "_name": row.name, **values}
        columns = [c for c in parsed.columns if c not in {"name", "day"}]
        summary.days = sorted({d for _, d in rows}) or [day or self.default_day()]
        existing = await self.repo.days(summary.days[0], summary.days[-1]) if rows else []
        before = {(m.chatter_id, m.day): m for m in existing if m.day in set(summary.days)}
        for key, row in rows.items():
            old = before.get(key)
            if old is None or not _from_export(old):
                continue
            summary.updated += 1
            changed = []
            for c in columns:
                if c == "hours" and old.hours_source == HUBSTAFF:
                    if not _same(old.hours, row.get("hours")) and row.get("hours") is not None:
                        summary.hubstaff_kept.append(by_id[key[0]].name)
                    continue
                if not _same(getattr(old, c), row.get(c)):
                    changed.append((c, getattr(old, c), row.get(c)))
            if changed:
                summary.changes.append(Change(by_id[key[0]].name, key[1], changed))
        summary.not_in_this_file = sorted({
            by_id[m.chatter_id].name for key, m in before.items()
            if key not in rows and _from_export(m) and m.chatter_id in by_id and by_id[m.chatter_id].active
        })
        summary.saved = len(rows)
        await self.repo.upsert_days(list(rows.values()), columns, self.clock.now(), hours_source=EXPORT)
        for key, row in rows.items():  # the hours now stored: Hubstaff's if it gave them, else the file's
            old = before.get(key)
            hours = old.hours if old is not None and old.hours_source == HUBSTAFF else row.get("hours")
            if "hours" not in columns and old is not None:
                hours = old.hours
            summary.day_off += hours is not None and hours < DAY_OFF_HOURS
        return summary

    @staticmethod
    def _worth_listing(row: CsvRow, match: NameMatch, our_teams: set[str]) -> bool:
        """Unknown names are listed back when they look like ours; old chatters are only counted."""
        if match.how is How.AMBIGUOUS or match.candidates:
            return True
        if row.group and our_teams and normalize_name(row.group) not in our_teams:
            return False
        active = any(v for v in (row.sales, row.fans_chatted, row.msgs_per_hr, row.ppvs_sent))
        return bool(active)

    async def ingest_hours(self, hours: Mapping[str, float], day: date) -> IngestSummary:
        """Hubstaff hours for one day, for the chatters named only: the others keep their hours.

        A Hubstaff pull names every member (0 for one who tracked nothing), a time export only
        those it covers; either way a chatter the source doesn't name is not assumed to be off.
        """
        chatters = await self.repo.chatters()
        matcher = await self.matcher(chatters)
        by_id = {c.id: c for c in chatters}
        found: dict[int, float] = {}
        summary = IngestSummary(days=[day], source=SOURCE_HUBSTAFF,
                                short=short_names(c.name for c in chatters if c.active))
        for name, h in hours.items():
            match = matcher.match(name)
            if match.chatter_id is None:
                summary.unplaced.append(match)
            elif not by_id[match.chatter_id].active:
                summary.ignored += 1
            else:
                found[match.chatter_id] = found.get(match.chatter_id, 0.0) + h
        before = {m.chatter_id: m.hours for m in await self.repo.days(day, day, set(found))} if found else {}
        rows = [{"chatter_id": cid, "day": day, "hours": h} for cid, h in found.items()]
        await self.repo.upsert_days(rows, ["hours"], self.clock.now(), hours_source=HUBSTAFF)
        summary.saved = len(rows)
        summary.day_off = sum(1 for h in found.values() if h < DAY_OFF_HOURS)
        summary.hours = sorted(((by_id[cid].name, before.get(cid), h) for cid, h in found.items()))
        summary.not_in_file = sorted(c.name for c in chatters if c.active and c.id not in found)
        return summary

    # -- reading ---------------------------------------------------------------------------------

    async def as_of(self, on: date | None = None) -> date:
        """The day the latest numbers are for (on or before `on`)."""
        latest = await self.repo.latest_day()
        today = self.clock.now().astimezone(ZoneInfo(self.config.timezone)).date()
        limit = on or today
        if latest is None:
            return limit - timedelta(days=1)
        return min(latest, limit)

    async def _views(self, on: date, back: int, names: Sequence[str] | None,
                     only: Chatter | None = None) -> tuple[list[TeamView], Scorer]:
        snap = await self.repo.snapshot(on - timedelta(days=back), on, include_inactive=only is not None)
        chatters = [c for c in snap.chatters if c.active or c == only]
        scorer = Scorer(chatters, snap.days, self.config.scoring)
        now = self.clock.now()
        if only is not None:
            return [build_team(only.team or NO_TEAM, scorer, [only], on, snap.last_coached, now)], scorer
        team_names = list(names) if names else sorted({c.team for c in chatters if c.team})
        views = [build_team(t, scorer, [c for c in chatters if c.team == t], on, snap.last_coached, now)
                 for t in team_names]
        return views, scorer

    def _lookback(self) -> int:
        return self.config.scoring.window_days + STREAK_LOOKBACK + TREND_DAYS

    async def card(self, name: str, on: date | None = None) -> tuple[Card | None, Msg | None]:
        chatter, problem = await self.find(name)
        if chatter is None:
            return None, problem
        views, _ = await self._views(await self.as_of(on), self._lookback(), None, only=chatter)
        return views[0].cards[0], None

    async def teams(self, names: Sequence[str] | None = None, on: date | None = None) -> list[TeamView]:
        views, _ = await self._views(await self.as_of(on), self._lookback(), names)
        return views

    async def history(self, days: int, names: Sequence[str] | None = None) -> tuple[list[TeamView], Scorer]:
        """Team views for the latest day plus a scorer covering `days` back (the dashboard)."""
        return await self._views(await self.as_of(), max(days, self._lookback()), names)

    def lead_for(self, slack_id: str | None) -> LeadConfig | None:
        return next((lead for lead in self.config.leads if lead.slack == slack_id), None)

    async def briefing_for(self, lead: LeadConfig, lead_name: str, shift_start: datetime | None = None,
                           late_since: datetime | None = None, locale: str | None = None) -> Briefing:
        """The lead's briefing; `shift_start` (aware) names the shift, else the configured start.

        `late_since` is when the briefing was due, given when it goes out late (after downtime).
        """
        views = await self.teams(lead.teams or None)
        cards = [c for v in views for c in v.cards]
        zone = ZoneInfo(lead.timezone)
        local = shift_start.astimezone(zone).time() if shift_start else lead.shift_start
        due = late_since.astimezone(zone).time() if late_since else None
        return briefing(lead_name, lead.teams, cards, local, due, locale)

    # -- coaching log ----------------------------------------------------------------------------

    async def log(self, name: str, notes: str, lead_id: int | None, kind: str = COACHING) -> Msg:
        """Store a coaching session (or a report); the answer is rendered in the lead's language."""
        chatter, problem = await self.find(name)
        if chatter is None:
            assert problem is not None
            return problem
        notes = " ".join(notes.split())[:2000]
        if not notes:
            return Msg(LOG_EMPTY)
        await self.repo.log(chatter.id, lead_id, kind, notes, self.clock.now())
        return Msg(LOGGED if kind == COACHING else REPORTED, chatter=esc(chatter.name))

    async def reports(self, since: date) -> dict[str, list[tuple[str, LogEntry]]]:
        """Team → (chatter name, report) for reports logged since `since`, newest first."""
        chatters = {c.id: c for c in await self.repo.chatters()}
        out: dict[str, list[tuple[str, LogEntry]]] = {}
        for e in await self.repo.recent(REPORT, since):
            c = chatters.get(e.chatter_id)
            if c is not None:
                out.setdefault(c.team or NO_TEAM, []).append((c.name, e))
        return out

    # -- dashboard and scheduled work ------------------------------------------------------------

    async def dashboard_html(self, days: int = 30) -> str:
        views, scorer = await self.history(days)
        since = (views[0].day if views else self.clock.now().date()) - timedelta(days=14)
        return render_dashboard(views, scorer, self.clock.now(), days, await self.reports(since))

    async def write_dashboard_if_configured(self) -> None:
        path = self.config.dashboard_path
        if path is None:
            return
        await asyncio.to_thread(_write_atomically, path, await self.dashboard_html())

    async def scheduled_ingest(self) -> list[str]:
        """The morning job: exports saved in `drop_dir`, then Hubstaff hours, then the dashboard."""
        done: list[str] = []
        drop = self.config.drop_dir
        if drop is not None and drop.is_dir():
            processed = drop / "processed"
            for path in await asyncio.to_thread(lambda: sorted(drop.glob("*.csv"))):
                try:
                    summary = await self.ingest_file(await asyncio.to_thread(path.read_bytes), filename=path.name)
                    done.append(f"{path.name}: {summary.saved} saved")
                except CsvError as exc:
                    log.warning("export rejected file=%s reason=%s", path.name, exc)
                    done.append(f"{path.name}: {exc}")
                    continue
                await asyncio.to_thread(_move_into, path, processed)
        if self.hours_source is not None:
            day = self.default_day()
            try:
                hours = await self.hours_source(day)
            except Exception:
                log.exception("hubstaff hours failed day=%s", day)
                hours = None
            if hours:
                summary = await self.ingest_hours(hours, day)
                done.append(f"hubstaff {day}: {summary.saved} chatters, {summary.day_off} day off")
        await self.write_dashboard_if_configured()
        log.info("chatter ingest done: %s", "; ".join(done) or "nothing new")
        return done


def _from_export(day: DayMetrics) -> bool:
    """A stored day that an export wrote to (not only Hubstaff's hours)."""
    return day.hours_source == EXPORT or any(getattr(day, c) is not None for c in EXPORT_COLUMNS)


def _write_atomically(path: Path, text: str) -> None:
    """Readers (a web server, a browser refresh) never see a half-written dashboard."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _move_into(path: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    path.replace(folder / path.name)
