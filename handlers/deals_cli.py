"""CLI for deals: `python main.py import deals FILE.json|FILE.csv` and `python main.py amocrm-sync`.

`import deals` is a kind of the shared `import` command (coaching/sources/imports.py), with its
common options: `--map FIELD=COLUMN` renames CSV columns, `--dry-run` validates only, `--report`
gets the reason a file was refused. A file is loaded whole or not at all (formats in
coaching/deal_import.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from bot.app import App
from coaching.deal_import import DealFileError, load_file
from coaching.sources.imports import ImportKind, parse_map, register_import
from storage.deals import DealRepo


def _write_report(report: Path, path: Path, reason: str) -> None:
    with report.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["file", "reason"], [str(path), reason]])


async def import_deals(
    app: App, path: Path, *, columns: dict[str, str] | None = None, dry_run: bool = False, report: Path | None = None
) -> int:
    try:
        deals = load_file(path, columns=columns)
    except DealFileError as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        if report is not None:
            _write_report(report, path, str(exc))
        return 2
    if dry_run:
        print(f"{path}: {len(deals)} deals and {sum(len(d.events) for d in deals)} events are valid (dry run)")
        return 0
    result = await DealRepo(app.db).upsert(deals, app.clock.now())
    print(f"imported {result.deals} deals and {result.events} events from {path}")
    if result.unassigned:
        shown = ", ".join(str(i) for i in result.unassigned[:10])
        more = "…" if len(result.unassigned) > 10 else ""
        print(f"{len(result.unassigned)} deal(s) have no matching manager (owner unknown): {shown}{more}")
    return 0


async def _run_import(app: App, args: argparse.Namespace) -> int:
    try:
        columns = parse_map(getattr(args, "map", []) or [])
    except ValueError as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 2
    return await import_deals(app, args.file, columns=columns, dry_run=getattr(args, "dry_run", False),
                              report=getattr(args, "report", None))


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
    print_unmapped(result.unmapped_owners, "amocrm")
    return 0


def print_unmapped(owners: dict[str, int], source: str) -> None:
    """Name every CRM user whose deals reach nobody, and how to fix it."""
    if not owners:
        return
    shown = ", ".join(f"{ref} ({n} deal{'s' if n != 1 else ''})" for ref, n in sorted(owners.items())[:20])
    more = f" and {len(owners) - 20} more" if len(owners) > 20 else ""
    print(f"{len(owners)} {source} user(s) are linked to nobody, so their deals reach no one: {shown}{more}")
    first = sorted(owners)[0]
    print(f"  link one: python main.py people link NAME --external {source}:{first}  "
          f"(or people add NAME --role sales_manager --external {source}:{first})")


def setup(app: App) -> None:
    register_import(app, ImportKind("deals", "deals and their events from a JSON or CSV file", _run_import))
    app.add_cli("amocrm-sync", "pull leads, calls, stage changes and tasks from amoCRM", _configure_sync, _run_sync)
