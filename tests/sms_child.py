"""A Huddle process with only the core and the SMS stack, for tests that kill it with SIGKILL.

    HUDDLE_SMS_PORT=/path/to/pty HUDDLE_DATABASE_URL=... python -m tests.sms_child

The same `serve` as `python main.py run`, without the Slack/Telegram/handler plugins (which only
make it slower to start): the modem, the inbox, the dispatcher and the outbox are all real.
"""

from __future__ import annotations

import asyncio
import sys

from bot import logs
from bot.cli import build_app, serve


def main() -> int:
    app = build_app(plugins=["bot.builtin", "channels.sms.plugin"])
    logs.configure(app.settings.log_format, app.settings.log_level)
    return asyncio.run(serve(app))


if __name__ == "__main__":
    sys.exit(main())
