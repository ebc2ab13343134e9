"""`python main.py [command]`: builds the App, loads the plugins, runs one command.

Plugins add their own commands (`app.add_cli`), so `--help` lists everything this install can do.
A user's mistake (a bad argument, an invalid setting, a database that cannot be opened, a busy HTTP
port) is one line on stderr and exit code 2: a command raises `UserError` (from `bot.errors`).
Only `run` and `db upgrade` may create a database; every other command refuses a SQLite file that
does not exist, so a typo'd path is reported instead of becoming a new empty database.
Ctrl-C and SIGTERM stop the bot cleanly, without a traceback, at any moment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from bot import logs
from bot.app import App
from bot.config_file import ConfigError
from bot.errors import USAGE_ERROR, UserError, one_line
from bot.heap import freeze_startup_heap
from bot.plugins import Plugin, PluginError, selected
from bot.settings import CoreSettings

log = logging.getLogger("huddle")

__all__ = ["USAGE_ERROR", "UserError", "build_app", "build_parser", "main", "serve"]

CREATES_DATABASE = {"run", "gateway", "worker", "db"}
"""Commands that may make a new database; the others need one that exists."""

SERVES = {"run", "gateway", "worker"}
"""Commands that run the bot, each in its process role (bot/process.py)."""


def report(exc: BaseException) -> int:
    """Print an operator's mistake as the one line `huddle: …` on stderr; the exit code."""
    print(f"huddle: {one_line(exc)}", file=sys.stderr)
    return USAGE_ERROR


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
            await app.open_db(create=command.name in CREATES_DATABASE)
        result = await command.run(app, args)
    except (UserError, ConfigError) as exc:
        return report(exc)
    finally:
        if not app.started:
            await app.db.close()
    return int(result or 0)


async def serve(app: App) -> int:
    """The bot: start everything, run until Ctrl-C / SIGTERM / `/quit`, stop cleanly.

    A stop asked for while starting (Ctrl-C during a slow start) cancels the start and undoes it.
    A second Ctrl-C exits at once.
    """
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            log.warning("second interrupt: exiting without waiting")
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(130)
        log.info("stopping (press Ctrl-C again to force)")
        app.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    starting = asyncio.create_task(app.start(), name="start")  # in the role `app.set_role` chose
    stopping = asyncio.create_task(app.wait_stopped(), name="wait-stopped")
    running = False
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 0
        try:
            starting.result()
        except (ConfigError, UserError) as exc:
            return report(exc)
        running = True
        freeze_startup_heap()
        log.info(
            "huddle running role=%s id=%s database=%s channels=%s http=%s",
            app.role,
            app.settings.worker_id,
            app.db.describe(),
            ",".join(sorted(app.channels)),
            f"{app.settings.http_host}:{app.http.port}" if app.http.port else "off",
        )
        await stopping
    finally:
        stopping.cancel()
        await app.stop()
        if running:
            log.info("stopped")
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
    return 0


def main(plugins: Sequence[str | Plugin], argv: Sequence[str] | None = None) -> int:
    """Run one command of the app that `plugins` make (main.py names them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            app = build_app(plugins)
        except UserError as exc:
            return report(exc)
        parser = build_parser(app)
        args = parser.parse_args(argv)
        logs.configure(app.settings.log_format, app.settings.log_level)
        if args.command is None or args.command in SERVES:
            try:
                app.set_role(args.command or "run")
            except UserError as exc:
                return report(exc)
            return asyncio.run(serve(app))
        return asyncio.run(_run_command(app, args))
    except KeyboardInterrupt:  # Ctrl-C before the loop took over the signal, or during a command
        print("huddle: interrupted", file=sys.stderr)
        return 130


def run(plugins: Sequence[str | Plugin]) -> NoReturn:
    """`main`, then leave at once: the work is done, files closed and output flushed by then.

    Tearing down a finished interpreter (freeing every module and object one by one) costs about
    a fifth of a short command's run here; a CLI whose state is already on disk need not pay it.
    """
    try:
        code = main(plugins)
    except SystemExit as exc:  # --help and usage errors leave through argparse
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
