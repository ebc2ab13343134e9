"""`python main.py import KIND FILE.csv`: one CLI command, kinds registered by any plugin.

    from coaching.sources.imports import ImportKind, register_import

    async def run(app: App, args: argparse.Namespace) -> int:   # args.file, args.map, args.report, ...
        ...
    register_import(app, ImportKind("deals", "deals exported from the CRM", run))

The store plugin registers customers, transactions, items, products and staff; other plugins add
theirs (deals, shifts) the same way, in any load order. Every kind gets the common options
`FILE`, `--map FIELD=COLUMN` (repeatable), `--report PATH` (skipped rows as CSV) and
`--dry-run`; `configure` may add more.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App

ImportRun = Callable[["App", argparse.Namespace], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class ImportKind:
    name: str
    help: str
    run: ImportRun
    configure: Callable[[argparse.ArgumentParser], None] | None = None


def import_kinds(app: App) -> dict[str, ImportKind]:
    return app.deps.setdefault("import_kinds", {})


def register_import(app: App, kind: ImportKind) -> None:
    kinds = import_kinds(app)
    if kind.name in kinds:
        raise ValueError(f"import kind {kind.name!r} registered twice")
    kinds[kind.name] = kind
    if "import" not in app.cli_commands:
        app.add_cli("import", "load a CSV file (customers, transactions, ...)", _configure(app), _run)


def _configure(app: App) -> Callable[[argparse.ArgumentParser], None]:
    def configure(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="import_kind", metavar="KIND", required=True,
                                    parser_class=type(parser))
        for kind in sorted(import_kinds(app).values(), key=lambda k: k.name):
            p = sub.add_parser(kind.name, help=kind.help, description=kind.help)
            p.add_argument("file", type=Path, help="the CSV file")
            p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                           help="read FIELD from COLUMN when the export names it differently (repeatable)")
            p.add_argument("--report", type=Path, default=None, help="write the skipped rows and reasons to this CSV")
            p.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
            if kind.configure:
                kind.configure(p)

    return configure


async def _run(app: App, args: argparse.Namespace) -> int | None:
    return await import_kinds(app)[args.import_kind].run(app, args)


def parse_map(items: list[str]) -> dict[str, str]:
    """`["phone=Mobile Number"]` → `{"phone": "Mobile Number"}`; raises ValueError on a bad item."""
    out = {}
    for item in items:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise ValueError(f"--map wants FIELD=COLUMN, got {item!r}")
        out[name.strip()] = column.strip()
    return out
