"""CLI for deals: `python main.py import-deals FILE.json|FILE.csv` (and amoCRM sync when configured).

`import-deals` stands in for `python main.py import deals FILE` until the shared import-kind
registry exists; both read the same formats (see coaching/deal_import.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.app import App
from coaching.deal_import import DealFileError, load_file
from storage.deals import DealRepo


async def import_deals(app: App, path: Path) -> int:
    try:
        deals = load_file(path)
    except DealFileError as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 2
    result = await DealRepo(app.db).upsert(deals, app.clock.now())
    print(f"imported {result.deals} deals and {result.events} events from {path}")
    if result.unassigned:
        shown = ", ".join(str(i) for i in result.unassigned[:10])
        more = "…" if len(result.unassigned) > 10 else ""
        print(f"{len(result.unassigned)} deal(s) have no matching manager (owner unknown): {shown}{more}")
    return 0


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .json or .csv file of deals and their events")


async def _run_import(app: App, args: argparse.Namespace) -> int:
    return await import_deals(app, args.file)


def _configure_sync(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, help="stop after this many leads (a trial run)")


async def _run_sync(app: App, args: argparse.Namespace) -> int:
    from coaching.sources.amocrm import AmoCrmError, AmoSettings, sync_amocrm

    settings = AmoSettings()
    if not settings.configured:
        print("amoCRM is not configured: set HUDDLE_AMOCRM_BASE_URL, _CLIENT_ID, _CLIENT_SECRET and the token file",
              file=sys.stderr)
        return 2
    try:
        result = await sync_amocrm(settings, DealRepo(app.db), app.clock.now(), limit=args.limit)
    except AmoCrmError as exc:
        print(f"amoCRM sync failed: {exc}", file=sys.stderr)
        return 1
    print(f"synced {result.deals} deals and {result.events} events from amoCRM")
    return 0


def setup(app: App) -> None:
    app.add_cli("import-deals", "load deals and their events from a JSON or CSV file", _configure_import, _run_import)
    app.add_cli("amocrm-sync", "pull leads, calls, stage changes and tasks from amoCRM", _configure_sync, _run_sync)
