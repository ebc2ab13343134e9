"""`python main.py report KIND`: one CLI command, report kinds registered by any plugin.

    register_report(app, "coaching", "coaching response rates per type and variant", run)

where `async def run(app, args) -> int | None` prints its report.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App

ReportRun = Callable[["App", argparse.Namespace], Awaitable[int | None]]
Configure = Callable[[argparse.ArgumentParser], None]


def report_kinds(app: App) -> dict[str, tuple[str, ReportRun]]:
    return app.deps.setdefault("report_kinds", {})


def _options(app: App) -> dict[str, Configure]:
    return app.deps.setdefault("report_options", {})


def register_report(app: App, name: str, help: str, run: ReportRun, configure: Configure | None = None) -> None:
    """Add `report NAME`; `configure(parser)` adds that kind's own options (e.g. `--out`)."""
    kinds = report_kinds(app)
    if name in kinds:
        raise ValueError(f"report {name!r} registered twice")
    kinds[name] = (help, run)
    if configure is not None:
        _options(app)[name] = configure
    if "report" in app.cli_commands:
        return

    def configure_all(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="report_kind", metavar="KIND", required=True, parser_class=type(parser))
        for kind, (text, _) in sorted(report_kinds(app).items()):
            kind_parser = sub.add_parser(kind, help=text, description=text)
            options = _options(app).get(kind)
            if options is not None:
                options(kind_parser)

    async def run_report(app: App, args: argparse.Namespace) -> int | None:
        return await report_kinds(app)[args.report_kind][1](app, args)

    app.add_cli("report", "print or write a report (coaching, weekly, ...)", configure_all, run_report)
