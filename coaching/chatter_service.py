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
from coaching.briefings import Briefing, briefing
from coaching.cards import NO_TEAM, STREAK_LOOKBACK, TREND_DAYS, Card, Scorer, TeamView, build_team
from coaching.chatter_config import ChattersConfig, LeadConfig
from coaching.chatter_metrics import DAY_OFF_HOURS, Chatter, CsvRow
from coaching.dashboard import render_dashboard
from coaching.names import How, NameMatch, NameMatcher, describe_unplaced, normalize_name
from coaching.sources.hubstaff import looks_like_hubstaff, parse_hubstaff_csv
from coaching.sources.inflow_csv import CsvError, parse_inflow_csv
from storage.chatters import COACHING, REPORT, ChatterRepo, LogEntry

log = logging.getLogger(__name__)

_PRECEDENCE = {How.ALIAS: 0, How.EXACT: 0, How.SWAPPED: 1, How.CONTAINED: 2, How.FUZZY: 3}
"""When two rows name one chatter, the surer match wins."""

_DATE_IN_NAME = re.compile(r"(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})")


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
    """(name in the file, chatter) placed by fuzzy matching, shown so a wrong guess is noticed."""
    source: str = "export"
    doubles: list[tuple[str, str, str]] = field(default_factory=list)
    """(chatter, name kept, name dropped) when two rows of one day land on the same chatter."""

    def text(self) -> str:
        source = self.source
        when = ", ".join(f"{d:%a %d %b}" for d in self.days[:3]) + (" …" if len(self.days) > 3 else "")
        noun = "chatter-day" if len(self.days) > 1 else "chatter"
        lines = [f"Got the {source} for {when}: {self.saved} {noun}{'s' if self.saved != 1 else ''} saved"
                 + (f" ({self.updated} updated from an earlier upload)" if self.updated else "") + "."]
        if self.day_off:
            lines.append(f"{self.day_off} on a day off (under 1 hour worked).")
        if self.ignored:
            lines.append(f"{self.ignored} not active, ignored.")
        for chatter, kept, dropped in self.doubles[:5]:
            lines.append(f"{chatter} is in the file twice (“{kept}” and “{dropped}”); I kept “{kept}”.")
        if self.loose:
            lines.append("Matched loosely: " + "; ".join(f"{a} → {b}" for a, b in self.loose[:5])
                         + (f" and {len(self.loose) - 5} more" if len(self.loose) > 5 else "") + ".")
        if self.unplaced:
            lines.append(describe_unplaced(self.unplaced) + ".")
            example = next((m for m in self.unplaced if m.candidates), self.unplaced[0])
            target = example.candidates[0] if example.candidates else "Their Name"
            lines.append(f'To teach me a name once: `alias "{example.raw}" = "{target}"`')
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

    async def find(self, name: str) -> tuple[Chatter | None, str | None]:
        """A chatter by any name a lead might type; or None and a plain sentence saying why."""
        chatters = await self.repo.chatters()
        match = (await self.matcher(chatters)).match(name)
        by_id = {c.id: c for c in chatters}
        if match.chatter_id is not None:
            return by_id[match.chatter_id], None
        if match.how is How.AMBIGUOUS:
            return None, f"“{name}” could be {' or '.join(match.candidates)}. Which one? Use the full name."
        hint = f" Did you mean {' or '.join(match.candidates)}?" if match.candidates else ""
        return None, f"I don't know a chatter called “{name}”.{hint}"

    async def alias(self, alias: str, target: str, by: int | None) -> str:
        chatter, problem = await self.find(target)
        if chatter is None:
            return problem or ""
        if not normalize_name(alias):
            return "The name to remember is empty."
        await self.repo.add_alias(alias.strip(), chatter.id, by, self.clock.now())
        return f"Got it: “{alias.strip()}” is {chatter.name}. I'll remember that in every upload."

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
        total = IngestSummary(days=[], source="Hubstaff hours")
        for when, hours in sorted(by_day.items(), key=lambda kv: kv[0] or date.min):
            part = await self.ingest_hours(hours, day or when or self.default_day())
            total.days += part.days
            total.saved += part.saved
            total.day_off += part.day_off
            total.ignored += part.ignored
            total.unplaced += part.unplaced
        return total

    async def ingest_csv(
        self, data: bytes | str, day: date | None = None, filename: str | None = None
    ) -> IngestSummary:
        """Parse, match and store an export; raises CsvError (nothing stored) on a bad file."""
        parsed = parse_inflow_csv(data)
        chatters = await self.repo.chatters()
        matcher = await self.matcher(chatters)
        by_id = {c.id: c for c in chatters}
        our_teams = {normalize_name(c.team) for c in chatters if c.team}
        rows: dict[tuple[int, date], dict[str, Any]] = {}
        summary = IngestSummary(days=[])
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
            if match.how is How.FUZZY:
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
        existing = await self.repo.days(summary.days[0], summary.days[-1], {cid for cid, _ in rows}) if rows else []
        hours_before = {(m.chatter_id, m.day): m.hours for m in existing}
        summary.updated = sum(1 for k in rows if k in hours_before)
        summary.saved = len(rows)
        await self.repo.upsert_days(list(rows.values()), columns, self.clock.now(), keep_existing={"hours"})
        for key, row in rows.items():  # the hours now stored: Hubstaff's if it came first, else the file's
            hours = hours_before.get(key)
            hours = row.get("hours") if hours is None else hours
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
        """Hubstaff hours for one day; active chatters absent from a non-empty pull tracked 0 h."""
        chatters = await self.repo.chatters()
        matcher = await self.matcher(chatters)
        by_id = {c.id: c for c in chatters}
        found: dict[int, float] = {}
        summary = IngestSummary(days=[day], source="Hubstaff hours")
        for name, h in hours.items():
            match = matcher.match(name)
            if match.chatter_id is None:
                summary.unplaced.append(match)
            elif not by_id[match.chatter_id].active:
                summary.ignored += 1
            else:
                found[match.chatter_id] = found.get(match.chatter_id, 0.0) + h
        if found:
            for c in chatters:
                if c.active and c.id not in found:
                    found[c.id] = 0.0
        rows = [{"chatter_id": cid, "day": day, "hours": h} for cid, h in found.items()]
        await self.repo.upsert_days(rows, ["hours"], self.clock.now())
        summary.saved = len(rows)
        summary.day_off = sum(1 for h in found.values() if h < 1.0)
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

    async def card(self, name: str, on: date | None = None) -> tuple[Card | None, str | None]:
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

    async def briefing_for(self, lead: LeadConfig, lead_name: str, shift_start: datetime | None = None) -> Briefing:
        """The lead's briefing; `shift_start` (aware) names the shift, else the configured start."""
        views = await self.teams(lead.teams)
        cards = [c for v in views for c in v.cards]
        local = shift_start.astimezone(ZoneInfo(lead.timezone)).time() if shift_start else lead.shift_start
        return briefing(lead_name, lead.teams, cards, f"{local:%H:%M} shift")

    # -- coaching log ----------------------------------------------------------------------------

    async def log(self, name: str, notes: str, lead_id: int | None, kind: str = COACHING) -> str:
        chatter, problem = await self.find(name)
        if chatter is None:
            return problem or ""
        notes = " ".join(notes.split())[:2000]
        if not notes:
            return "Add what you talked about, e.g. `log Ana talked about PPV pricing`."
        await self.repo.log(chatter.id, lead_id, kind, notes, self.clock.now())
        if kind == COACHING:
            return f"Logged coaching for {chatter.name}. I'll count from today for “days since last coaching”."
        return f"Report on {chatter.name} saved. Thanks — the COO sees it on the dashboard."

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


def _write_atomically(path: Path, text: str) -> None:
    """Readers (a web server, a browser refresh) never see a half-written dashboard."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _move_into(path: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    path.replace(folder / path.name)
