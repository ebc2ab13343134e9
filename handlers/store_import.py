"""`python main.py import customers|transactions|items|products|staff FILE.csv`."""

from __future__ import annotations

import argparse
import sys
import time
from zoneinfo import ZoneInfo

from bot.app import App
from bot.errors import UserError
from coaching.sources.imports import ImportKind, ImportRun, parse_map, register_import

ORDER = "customers → products → staff → transactions → items"

KINDS = {
    "customers": "CRM customers: id, name, phone, VIP tier, signup date, points, favourite categories",
    "transactions": "POS transactions: id, date, total, status, customer id, budtender (employee) id",
    "items": "transaction line items: transaction id, sku, name, category, quantity, price",
    "products": "the product catalogue: sku, name, category, brand, house brand, price tier, in stock",
    "staff": "budtenders: employee id, name, phone (becomes their SMS address), store",
}
"""What `python main.py import KIND` takes (the parsers live in coaching/sources/store_csv.py)."""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timezone", default=None,
                        help="zone of times without one (default: the first store's timezone)")
    parser.add_argument("--store", default=None, help="store code for rows without a store column")
    parser.add_argument("--house-brand", action="append", default=[], metavar="BRAND",
                        help="products: brands that are the store's own (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _runner(kind: str) -> ImportRun:
    async def run(app: App, args: argparse.Namespace) -> int:
        from coaching.sources.csv_rows import FileRefused  # the importer loads only for an import
        from coaching.sources.store_csv import ImportOptions, StoreImporter
        from handlers.store_services import services

        svc = services(app)
        try:
            overrides = parse_map(args.map)
            tz = ZoneInfo(args.timezone or svc.default_store.timezone)
        except (ValueError, KeyError) as exc:
            print(f"huddle: {exc}", file=sys.stderr)
            return 2
        if args.dry_run:  # writes nothing, not even the configured stores
            known = {s.code for s in svc.stores} | {s.code for s in await svc.customers.stores()}
        else:
            known = set(await svc.ensure_configured(app.clock.now()))
        if args.store and args.store not in known:
            raise UserError(f"import {kind} --store: unknown store {args.store!r} "
                            f"(known: {', '.join(sorted(known))}); add it to [[stores]] in huddle.toml")
        options = ImportOptions(
            timezone=tz,
            default_store=args.store or svc.default_store.code,
            dry_run=args.dry_run,
            progress=False if args.no_progress else None,
            house_brands=tuple(b.lower() for b in args.house_brand),
        )
        importer = StoreImporter(app.db, app.people, app.clock.now)
        started = time.perf_counter()
        try:
            report = await importer.run(kind, args.file, options, overrides)
        except FileRefused as exc:
            print(f"huddle: import {kind}: {exc}", file=sys.stderr)
            return 2
        elapsed = time.perf_counter() - started
        print(report.summary())
        print(f"{'validated' if args.dry_run else 'done'} in {elapsed:.1f} s"
              f"{' (dry run: nothing written)' if args.dry_run else ''}. Order for a full load: {ORDER}.")
        if args.report:
            report.write(args.report)
            print(f"skipped rows written to {args.report}")
        return 0 if report.written or not report.read else 1

    return run


def setup(app: App) -> None:
    for kind, help_text in KINDS.items():
        register_import(app, ImportKind(kind, help_text, _runner(kind), _configure))
