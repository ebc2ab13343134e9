"""Slack plugin: the channel's policy always, the slack-bolt adapter only when tokens are set.

The adapter (`channels/slack_app.py`) is built when the bot starts, never for `status`, `--help`
or other commands. Socket Mode (no public URL) when an app token is set; HTTP mode mounts
`POST /slack/events` and checks Slack's signature over a 5-minute window.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.plugins import Plugin
from channels.slack_settings import SlackPolicy, SlackSettings

if TYPE_CHECKING:
    from aiohttp import web

    from bot.app import App
    from channels.base import Channel

log = logging.getLogger(__name__)


def setup(app: App) -> None:
    """Declare Slack; run it when its tokens are set (otherwise the console stands in)."""
    settings = app.use_settings(SlackSettings)
    policy = app.declare_channel(SlackPolicy(settings))
    mode = settings.resolved_mode()
    if mode is None:
        log.info(
            "slack not configured: set HUDDLE_SLACK_BOT_TOKEN with HUDDLE_SLACK_APP_TOKEN (socket mode) "
            "or HUDDLE_SLACK_SIGNING_SECRET (http mode)"
        )
        return

    def build() -> Channel:
        from channels.slack_app import SlackChannel

        return SlackChannel(settings, app.clock, policy=policy)

    app.add_channel_factory("slack", build, f"Slack app ({mode} mode)")
    if mode == "http":
        if not app.settings.http_enabled:
            log.warning("slack http mode needs the HTTP server: set HUDDLE_HTTP_ENABLED=true")

        async def events(request: web.Request) -> web.StreamResponse:
            return await app.channels["slack"].handle_http(request)  # type: ignore[attr-defined]

        app.http.route("POST", settings.slack_events_path, events)


plugin = Plugin("slack", setup, description="Slack app (slack-bolt), for team leads by default")


def __getattr__(name: str) -> Any:
    """`SlackChannel`, imported on first use (so importing this plugin stays cheap)."""
    if name == "SlackChannel":
        from channels.slack_app import SlackChannel

        return SlackChannel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SlackPolicy", "SlackSettings", "plugin", "setup"]
