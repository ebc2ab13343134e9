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


def report_kinds(app: App) -> dict[str, tuple[str, ReportRun]]:
    return app.deps.setdefault("report_kinds", {})


def register_report(app: App, name: str, help: str, run: ReportRun) -> None:
    kinds = report_kinds(app)
    if name in kinds:
        raise ValueError(f"report {name!r} registered twice")
    kinds[name] = (help, run)
    if "report" in app.cli_commands:
        return

    def configure(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="report_kind", metavar="KIND", required=True, parser_class=type(parser))
        for kind, (text, _) in sorted(report_kinds(app).items()):
            sub.add_parser(kind, help=text, description=text)

    async def run_report(app: App, args: argparse.Namespace) -> int | None:
        return await report_kinds(app)[args.report_kind][1](app, args)

    app.add_cli("report", "print a report (coaching, ...)", configure, run_report)
