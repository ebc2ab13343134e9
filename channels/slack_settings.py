"""What Huddle knows about Slack without importing slack-bolt: settings and the channel's policy.

Addresses are user or channel ids (`U024BE7LH`, `C0STAFF`); commands are typed as words in a DM
or after the slash command (`/huddle stale 5`); mrkdwn markup; about one message a second per
channel, a short burst allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from bot.settings import HuddleSettings
from channels.base import Capabilities, ChannelPolicy, Markup, Pacing
from channels.slack_text import MAX_TEXT


class SlackSettings(HuddleSettings):
    slack_bot_token: SecretStr | None = Field(None, description="xoxb- bot token (chat:write, im:write, files:read)")
    slack_app_token: SecretStr | None = Field(None, description="xapp- app-level token for Socket Mode")
    slack_signing_secret: SecretStr | None = Field(None, description="signing secret for HTTP mode")
    slack_api_url: str | None = Field(None, description="Web API base URL (a proxy or a fake server)")
    slack_mode: Literal["socket", "http"] | None = Field(
        None, description="default: socket when an app token is set, else http when a signing secret is set"
    )
    slack_events_path: str = "/slack/events"
    slack_command: str = Field("/huddle", description="the slash command whose text is a Huddle command")
    slack_ping_interval: float = Field(10.0, gt=0, description="seconds between the SDK's own websocket pings")
    slack_watchdog_interval: float = Field(30.0, gt=0, description="seconds between watchdog looks at the socket")
    slack_watchdog_timeout: float = Field(120.0, gt=0, description="seconds without a sign of life before reconnecting")
    slack_connect_timeout: float = Field(15.0, gt=0, description="seconds start() waits for the first connection")
    slack_max_file_bytes: int = Field(20 * 1024 * 1024, gt=0)
    slack_per_channel_rate: float | None = Field(1.0, description="messages/s to one Slack channel or DM")
    slack_per_channel_burst: int = Field(3, ge=1, description="messages a channel may take at once, then 1/s")

    def resolved_mode(self) -> Literal["socket", "http"] | None:
        """Which mode runs, or None when Slack is not configured (the console stands in)."""
        if self.slack_bot_token is None:
            return None
        if self.slack_mode == "socket" or (self.slack_mode is None and self.slack_app_token is not None):
            return "socket" if self.slack_app_token is not None else None
        if self.slack_mode == "http" or self.slack_signing_secret is not None:
            return "http" if self.slack_signing_secret is not None else None
        return None

    def api_base(self) -> str | None:
        if not self.slack_api_url:
            return None
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"


class SlackPolicy(ChannelPolicy):
    name = "slack"
    capabilities = Capabilities(max_length=MAX_TEXT, markup=Markup.SLACK_MRKDWN, buttons=True, files=True)
    address_label = "Slack user or channel id"

    def __init__(self, settings: SlackSettings | None = None) -> None:
        super().__init__()
        settings = settings or SlackSettings()
        self.pacing = Pacing(
            per_recipient_rate=settings.slack_per_channel_rate,
            per_recipient_burst=settings.slack_per_channel_burst,
            concurrency=8,
        )
