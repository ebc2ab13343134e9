"""Blaze POS sync: with HUDDLE_BLAZE_API_KEY, customers, products, sales and employees every few minutes.

`python main.py blaze sync [--since YYYY-MM-DD] [--entity NAME]` runs it by hand with a progress
bar; `python main.py blaze status` shows each cursor. The scheduled job (`blaze_sync`, every
HUDDLE_BLAZE_SYNC_MINUTES) runs the same code; one run at a time per process. See
`coaching/sources/blaze.py` (the API and the budget) and `coaching/sources/blaze_sync.py` (cursors,
and why a webhook and a sync of the same order make one order and one event).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.triggers.interval import IntervalTrigger

from bot.app import App
from bot.errors import UserError
from bot.plugins import Plugin
from bot.scheduler import JobRun
from coaching.sources.blaze import ENTITIES, BlazeSettings
from coaching.sources.blaze_sync import BlazeSync, SyncReport
from handlers.store_services import StoreServices, services
from storage.blaze import BlazeRepo

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None], None]
"""`progress(entity, rows just read, the server's total or None)`."""


class BlazeRunner:
    """Builds a client per run (the limiter is shared by every run of this process) and runs one at a time."""

    def __init__(self, app: App, store: StoreServices, settings: BlazeSettings) -> None:
        self.app = app
        self.store = store
        self.settings = settings
        self.lock = asyncio.Lock()
        self._limiter: AsyncLimiter | None = None

    @property
    def configured(self) -> bool:
        return self.settings.blaze_api_key is not None

    async def run(self, *, since: datetime | None = None, entities: tuple[str, ...] = ENTITIES,
                  progress: Progress | None = None) -> SyncReport:
        from coaching.sources.blaze import BlazeClient, budget_limiter

        if self._limiter is None:
            self._limiter = budget_limiter(self.settings.blaze_budget_share)
        async with self.lock:
            await self.store.ensure_configured(self.app.clock.now())
            client = BlazeClient(self.settings, limiter=self._limiter, sleep=self.app.clock.sleep,
                                 now=self.app.clock.now)
            try:
                sync = BlazeSync(self.app.db, self.app.people, self.app.clock, self.store.ingest, self.settings,
                                 client, stores=lambda: self.store.store_ids,
                                 default_store=self.store.default_store.code)
                return await sync.run(since=since, entities=entities, progress=progress)
            finally:
                await client.aclose()


def runner_of(app: App) -> BlazeRunner:
    return app.deps["blaze"]


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    sync = sub.add_parser("sync", help="sync now from each cursor (or from --since)")
    sync.add_argument("--since", help="start a fresh window at this date (YYYY-MM-DD, the first store's zone)")
    sync.add_argument("--entity", action="append", choices=ENTITIES, help="only this entity (repeatable)")
    sync.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("status", help="each entity's cursor: modified up to, rows and calls so far, last error")


async def _run(app: App, args: argparse.Namespace) -> int:
    runner = runner_of(app)
    if args.action == "status":
        cursors = await BlazeRepo(app.db).cursors()
        if not cursors:
            print("No Blaze sync has run yet." + ("" if runner.configured else " Set HUDDLE_BLAZE_API_KEY."))
        for c in cursors:
            upto = datetime.fromtimestamp(c.modified_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            busy = " (a window is half read: the next run resumes it)" if c.window_end_ms is not None else ""
            err = f"  last error: {c.last_error}" if c.last_error else ""
            print(f"{c.entity:<13} modified up to {upto}{busy}  {c.rows} rows, {c.calls} calls{err}")
        return 0
    if not runner.configured:
        raise UserError("blaze sync: set HUDDLE_BLAZE_API_KEY (and HUDDLE_BLAZE_PARTNER_KEY, HUDDLE_BLAZE_BASE_URL)")
    since = None
    if args.since:
        try:
            day = datetime.strptime(args.since, "%Y-%m-%d")
        except ValueError:
            raise UserError(f"blaze sync --since: {args.since!r} is not YYYY-MM-DD") from None
        since = day.replace(tzinfo=ZoneInfo(runner.store.default_store.timezone))
    bars: dict[str, object] = {}

    def progress(entity: str, rows: int, total: int | None) -> None:
        if args.no_progress:
            return
        from tqdm import tqdm  # only for a progress bar

        bar = bars.get(entity)
        if bar is None:
            bar = bars[entity] = tqdm(total=total, desc=f"blaze {entity}", unit=" rows", unit_scale=True, leave=True)
        bar.update(rows)  # type: ignore[attr-defined]

    try:
        report = await runner.run(since=since, entities=tuple(args.entity or ENTITIES), progress=progress)
    finally:
        for bar in bars.values():
            bar.close()  # type: ignore[attr-defined]
    print(report.summary())
    print(f"{report.rows} rows in {report.calls} calls")
    return 1 if report.error else 0


def setup(app: App) -> None:
    settings = app.use_settings(BlazeSettings)
    runner = app.provide("blaze", BlazeRunner(app, services(app), settings))
    app.add_cli("blaze", "Blaze POS: blaze sync [--since YYYY-MM-DD] with a progress bar | blaze status",
                _configure, _run)
    if not runner.configured:
        return

    async def job(_run: JobRun) -> None:
        if runner.lock.locked():
            log.info("blaze sync still running; this tick is skipped")
            return
        report = await runner.run()
        log.info("blaze sync rows=%d calls=%d error=%s", report.rows, report.calls, report.error)

    app.scheduler.add("blaze_sync", IntervalTrigger(minutes=settings.blaze_sync_minutes), job)


plugin = Plugin("blaze", setup, requires=("store",), description="Blaze POS sync of customers, products, sales, staff")

__all__ = ["BlazeRunner", "plugin", "runner_of", "setup"]
