"""`python main.py [command]`: builds the App, loads the plugins, runs one command.

Plugins add their own commands (`app.add_cli`), so `--help` lists everything this install can do.
A user's mistake (a bad argument, an invalid setting) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from bot import logs
from bot.app import App
from bot.config_file import ConfigError
from bot.heap import freeze_startup_heap
from bot.plugins import Plugin, PluginError, selected
from bot.settings import CoreSettings

log = logging.getLogger("huddle")

USAGE_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (try --help)\n")


def describe_settings(exc: ValidationError) -> str:
    """`HUDDLE_HTTP_PORT: Input should be ...` — the variable the user has to fix."""
    err = exc.errors()[0]
    key = "HUDDLE_" + "_".join(str(p) for p in err["loc"]).upper()
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{key}: {err['msg']}{more}"


def build_app(plugins: Sequence[str | Plugin], settings: CoreSettings | None = None) -> App:
    """The App with the composition root's plugins, as `[plugins]` and installed entry points edit them."""
    try:
        settings = settings or CoreSettings()
    except ValidationError as exc:
        raise UserError(f"configuration: {describe_settings(exc)}") from None
    try:
        app = App(settings)
        app.load_plugins(selected(plugins, app.config))
    except ValidationError as exc:
        raise UserError(f"configuration: {describe_settings(exc)}") from None
    except (ConfigError, PluginError) as exc:
        raise UserError(str(exc)) from None
    logs.register_secrets(settings, *app.settings_objects)
    return app


def build_parser(app: App) -> Parser:
    parser = Parser(
        prog="python main.py",
        description="Huddle: one process where a business talks with the people it serves, on the "
        "channels they already use. With no command, runs the bot.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in sorted(app.cli_commands.values(), key=lambda c: c.name):
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
    return parser


async def _run_command(app: App, args: argparse.Namespace) -> int:
    command = app.cli_commands[args.command]
    try:
        if command.needs_db:
            await app.open_db()
        result = await command.run(app, args)
    except (UserError, ConfigError) as exc:
        print(f"huddle: {exc}", file=sys.stderr)
        return USAGE_ERROR
    finally:
        if not app.started:
            await app.db.close()
    return int(result or 0)


async def serve(app: App) -> int:
    """The bot: start everything, run until Ctrl-C / SIGTERM / `/quit`, stop cleanly."""
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            log.warning("second interrupt: exiting without waiting")
            raise SystemExit(130)
        log.info("stopping (press Ctrl-C again to force)")
        app.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    try:
        try:
            await app.start()
        except (ConfigError, UserError) as exc:
            print(f"huddle: {exc}", file=sys.stderr)
            return USAGE_ERROR
        freeze_startup_heap()
        log.info(
            "huddle running database=%s channels=%s http=%s",
            app.db.describe(),
            ",".join(sorted(app.channels)),
            f"{app.settings.http_host}:{app.http.port}" if app.http.port else "off",
        )
        await app.wait_stopped()
    finally:
        await app.stop()
        log.info("stopped")
    return 0


def main(plugins: Sequence[str | Plugin], argv: Sequence[str] | None = None) -> int:
    """Run one command of the app that `plugins` make (main.py names them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        app = build_app(plugins)
    except UserError as exc:
        print(f"huddle: {exc}", file=sys.stderr)
        return USAGE_ERROR
    parser = build_parser(app)
    args = parser.parse_args(argv)
    logs.configure(app.settings.log_format, app.settings.log_level)
    if args.command is None or args.command == "run":
        return asyncio.run(serve(app))
    return asyncio.run(_run_command(app, args))
