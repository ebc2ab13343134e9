"""Telegram plugin: the channel's policy always, the aiogram adapter only when a token is set.

The adapter (`channels/telegram_bot.py`) imports aiogram, which builds several hundred pydantic
models on import; it is built when the bot starts, never for `status`, `--help` or other
commands. Long polling is the default; webhook mode mounts `POST /telegram/webhook`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.plugins import Plugin
from channels.telegram_settings import WEBHOOK_PATH, TelegramPolicy, TelegramSettings

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import App
    from channels.base import Channel

log = logging.getLogger(__name__)


def setup(app: App) -> None:
    """Declare Telegram; run it when HUDDLE_TELEGRAM_TOKEN is set (the webhook route in webhook mode)."""
    settings = app.use_settings(TelegramSettings)
    policy = app.declare_channel(TelegramPolicy(settings))
    if settings.telegram_token is None:
        log.info("telegram channel off: HUDDLE_TELEGRAM_TOKEN is not set")
        return
    app.provide("telegram_settings", settings)

    def build() -> Channel:
        from channels.telegram_bot import TelegramChannel

        return TelegramChannel(settings, app.clock, policy=policy)

    app.add_channel_factory("telegram", build, f"Telegram bot ({settings.telegram_mode})")
    if settings.telegram_mode == "webhook":
        if not app.settings.http_enabled:
            log.error("HUDDLE_TELEGRAM_MODE=webhook needs the HTTP server: set HUDDLE_HTTP_ENABLED=true")

        async def webhook(request: web.Request) -> web.StreamResponse:
            return await app.channels["telegram"].handle_webhook(request)  # type: ignore[attr-defined]

        app.http.route("POST", WEBHOOK_PATH, webhook)


plugin = Plugin("telegram", setup, description="Telegram bot (aiogram), for sales managers by default")

_ADAPTER_NAMES = {"GroupGate", "TelegramChannel", "keyboard_for", "send_error", "ALLOWED_UPDATES", "MAX_CALLBACK_BYTES",
                  "SECRET_HEADER"}


def __getattr__(name: str) -> Any:
    """The adapter's names, imported on first use (so importing this plugin stays cheap)."""
    if name == "SECRET_HEADER":
        from channels.telegram_settings import SECRET_HEADER

        return SECRET_HEADER
    if name in _ADAPTER_NAMES:
        from channels import telegram_bot

        return getattr(telegram_bot, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["WEBHOOK_PATH", "TelegramPolicy", "TelegramSettings", "plugin", "setup"]
