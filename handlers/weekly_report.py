"""The Monday report: built for a week, posted to the COO's chat, served at /admin/report/weekly, written
to a file (`python main.py report weekly --out week.html`, or `.pdf` / `--pdf`).

    [report]
    cron = "0 8 * * mon"          # every Monday 08:00 in `timezone`
    timezone = "America/Los_Angeles"
    send_to = ["slack:U0COO"]     # default: every admin's Slack or Telegram address
    base_url = "https://huddle.example.com"   # for the link in the summary

The HTML is self-contained (inline CSS and SVG charts, no script). The PDF is that page printed by
headless Chromium through Playwright (`pip install 'huddle[pdf]'` and Debian's `chromium`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from bot.app import App
from bot.config_file import StrictModel
from bot.errors import UserError
from bot.lazy import lazy_module
from bot.model import Address, OutboundKind
from bot.scheduler import JobRun, ScheduleSpec, weekly
from bot.settings import check_timezone
from coaching.reports import register_report
from coaching.weekly_report import ChatterChange, WeeklyReport, charts, money, section_sources, summary_text

if TYPE_CHECKING:
    from aiohttp import web

    from handlers.admin_web import AdminPages
    from storage.weekly import WeeklyRepo
else:
    web = lazy_module("aiohttp.web")

log = logging.getLogger(__name__)

CHROMIUM = os.environ.get("HUDDLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
CHAT_CHANNELS = ("slack", "telegram")


class ReportConfig(StrictModel):
    cron: str = "0 8 * * mon"
    timezone: str = "UTC"
    send_to: list[str] = Field(default_factory=list)
    base_url: str | None = None
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)


def week_bounds(week: str, tz: str) -> tuple[date, datetime, datetime]:
    """Monday of ISO `week` ("2026-W48") and the week's [start, end) in UTC."""
    try:
        year, _, number = week.upper().partition("-W")
        monday = date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise UserError(f"report weekly: week must look like 2026-W48, not {week!r}") from None
    zone = ZoneInfo(tz)
    start = datetime.combine(monday, time(0), zone)
    end = datetime.combine(monday + timedelta(days=7), time(0), zone)
    return monday, start, end


def last_week(now: datetime, tz: str) -> str:
    """The ISO week before the one `now` is in (on a Monday morning: the week that just ended)."""
    y, w, _ = (now.astimezone(ZoneInfo(tz)).date() - timedelta(days=7)).isocalendar()
    return f"{y}-W{w:02d}"


def _shift_week(week: str, days: int) -> str:
    monday, _, _ = week_bounds(week, "UTC")
    y, w, _ = (monday + timedelta(days=days)).isocalendar()
    return f"{y}-W{w:02d}"


class WeeklyReports:
    def __init__(self, app: App, config: ReportConfig) -> None:
        self.app = app
        self.config = config
        self._repo: WeeklyRepo | None = None
        self.pages: AdminPages | None = None

    @property
    def repo(self) -> WeeklyRepo:
        """The week's queries, imported on first use (they read most tables: not needed to start)."""
        if self._repo is None:
            from storage.weekly import WeeklyRepo

            self._repo = WeeklyRepo(self.app.db)
        return self._repo

    async def build(self, week: str | None = None) -> WeeklyReport:
        week = week or last_week(self.app.clock.now(), self.config.timezone)
        monday, start, end = week_bounds(week, self.config.timezone)
        data = await self.repo.week(start, end, self.config.timezone)
        report = WeeklyReport(week.upper(), monday, monday + timedelta(days=6), self.config.timezone, data)
        report.chatters = await self._chatters(monday)
        sources = section_sources(self.app)
        for name, source in sorted(sources.items()):
            try:
                section = await source(start, end)
            except Exception:
                log.exception("weekly report section failed section=%s", name)
                report.missing.append(f"{name}: could not be computed this time (logged).")
                continue
            if section is not None:
                report.sections.append(section)
        if "playbooks" not in sources:
            report.missing.append("Playbook ROI: no playbooks module in this deployment yet (a plugin adds it with "
                                  "coaching.weekly_report.add_section(app, \"playbooks\", ...)).")
        return report

    async def _chatters(self, monday: date) -> list[ChatterChange]:
        service = self.app.deps.get("chatters")
        if service is None:
            return []
        before = {c.chatter.name: c for v in await service.teams(on=monday - timedelta(days=1)) for c in v.cards}
        after = await service.teams(on=monday + timedelta(days=6))
        changes = []
        for view in after:
            for card in view.cards:
                old = before.get(card.chatter.name)
                changes.append(ChatterChange(card.chatter.name, view.name,
                                             old.score.rounded if old is not None and old.score else None,
                                             card.score.rounded if card.score else None))
        return sorted(changes, key=lambda c: (-(c.delta or -10_000), c.name))

    def html(self, report: WeeklyReport, *, signed_in: bool = False, csrf: str = "") -> str:
        from handlers.admin_web import _env

        now_week = last_week(self.app.clock.now() + timedelta(days=7), self.config.timezone)
        nxt = _shift_week(report.week, 7)
        return _env().get_template("weekly.html").render(
            r=report, charts=charts(report), money=money, generated=self.app.clock.now(), signed_in=signed_in,
            csrf=csrf, deployment=self.app.hooks.title(), section="report", prev_week=_shift_week(report.week, -7),
            next_week=nxt if nxt <= now_week else None)

    def link(self, week: str) -> str | None:
        base = self.config.base_url
        return f"{base.rstrip('/')}/admin/report/weekly?week={week}" if base else None

    async def recipients(self) -> list[Address]:
        if self.config.send_to:
            return [self.app.parse_address(a) for a in self.config.send_to]
        found = []
        for person in await self.app.people.all(role="admin"):
            address = next((a for a in person.addresses if a.channel in CHAT_CHANNELS), None)
            if address is not None:
                found.append(address)
        return found

    async def post(self, week: str | None = None) -> list[int]:
        """Build the week's report and queue its summary to each recipient (once per week and address)."""
        report = await self.build(week)
        text = summary_text(report, self.link(report.week))
        ids = []
        targets = await self.recipients()
        if not targets:
            log.warning("weekly report built but nobody to send it to: set [report] send_to or add an admin")
        for address in targets:
            msg = await self.app.send(address, text, kind=OutboundKind.PROACTIVE,
                                      key=f"weekly-report:{report.week}:{address}")
            if msg.id is not None:
                ids.append(msg.id)
        log.info("weekly report queued week=%s recipients=%d", report.week, len(ids))
        return ids

    # -- HTTP ----------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        from handlers.admin_web import SECURITY_HEADERS

        report = await self.build(_week_param(request))
        session = self.app.http.session_of(request)
        csrf = self.app.http.sessions.csrf_for(session) if session else ""
        return web.Response(text=self.html(report, signed_in=True, csrf=csrf), content_type="text/html",
                            headers=SECURITY_HEADERS)

    async def pdf_page(self, request: web.Request) -> web.Response:
        report = await self.build(_week_param(request))
        data = await html_to_pdf(self.html(report))
        return web.Response(body=data, content_type="application/pdf",
                            headers={"Content-Disposition": f'inline; filename="week-{report.week}.pdf"',
                                     "Cache-Control": "no-store"})


def _week_param(request: web.Request) -> str | None:
    week = request.query.get("week", "").strip()
    if not week:
        return None
    try:
        week_bounds(week, "UTC")
    except UserError:
        raise web.HTTPBadRequest(text="week must look like 2026-W48") from None
    return week


async def html_to_pdf(html: str) -> bytes:
    """Print the page with headless Chromium (Playwright's client; the browser is Debian's)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise UserError("PDF needs Playwright: pip install 'huddle[pdf]' (and Debian's chromium)") from None
    if shutil.which(CHROMIUM) is None:
        raise UserError(f"PDF needs Chromium at {CHROMIUM} (apt-get install chromium, or set HUDDLE_CHROMIUM)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.set_content(html, wait_until="load")
            return await page.pdf(format="A4", print_background=True,
                                  margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
        finally:
            await browser.close()


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", help="ISO week, e.g. 2026-W48 (default: last week)")
    parser.add_argument("--out", type=Path, help="write the report to FILE (.html, or .pdf)")
    parser.add_argument("--pdf", action="store_true", help="write a PDF (to --out, or week-<WEEK>.pdf)")
    parser.add_argument("--post", action="store_true", help="also post the summary to the report's recipients")


def setup(app: App, pages: AdminPages | None = None) -> WeeklyReports:
    config = app.config.section("report", ReportConfig, {})
    reports = app.provide("weekly_reports", WeeklyReports(app, config))
    reports.pages = pages

    async def job(_run: JobRun) -> None:
        await reports.post()

    if config.enabled:
        spec = ScheduleSpec(cron=config.cron, timezone=config.timezone)
        app.scheduler.add("weekly_report", spec, job, period=weekly(config.timezone))

    async def cli(app: App, args: argparse.Namespace) -> int:
        report = await reports.build(args.week)
        out: Path | None = args.out
        if args.pdf and out is None:
            out = Path(f"week-{report.week}.pdf")
        if out is None:
            print(_plain(summary_text(report, reports.link(report.week))))
        else:
            html = reports.html(report)
            try:
                if args.pdf or out.suffix.lower() == ".pdf":
                    out.write_bytes(await html_to_pdf(html))
                else:
                    out.write_text(html, encoding="utf-8")
            except OSError as exc:
                raise UserError(f"report weekly: can't write {out}: {exc.strerror or exc}") from None
            print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB) for {report.week}")
        if args.post:
            ids = await reports.post(report.week)
            print(f"queued the summary to {len(ids)} recipient(s)")
        return 0

    register_report(app, "weekly", "the Monday report: store, loyalty, coaching, chatters, deals (--out, --pdf)",
                    cli, _configure)
    app.http.route("GET", "/admin/report/weekly", reports.page, admin=True)
    app.http.route("GET", "/admin/report/weekly.pdf", reports.pdf_page, admin=True)
    return reports


def _plain(text: str) -> str:
    from channels.markup import to_plain

    return to_plain(text)


__all__ = ["ReportConfig", "WeeklyReports", "html_to_pdf", "last_week", "setup", "week_bounds"]

