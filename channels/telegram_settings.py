"""What Huddle knows about Telegram without importing aiogram: settings and the channel's policy.

Chat ids are numbers (a group's is negative, and a group is never enrolled as a person);
commands are typed `/stale`; the outbox paces 30 messages/s overall and 1/s per chat.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.settings import HuddleSettings
from channels.base import Capabilities, ChannelPolicy, Markup, Pacing
from channels.telegram_text import TELEGRAM_LIMIT

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramSettings(HuddleSettings):
    telegram_token: SecretStr | None = Field(None, description="token from @BotFather; the channel is off without it")
    telegram_api_url: str | None = Field(None, description="another Bot API server (self-hosted, or a fake in tests)")
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_url: str | None = Field(None, description=f"public HTTPS URL that reaches {WEBHOOK_PATH}")
    telegram_webhook_secret: SecretStr | None = Field(
        None, description="X-Telegram-Bot-Api-Secret-Token value; derived from the token when unset or empty"
    )
    telegram_poll_timeout: int = Field(25, ge=0, le=50, description="long-poll seconds per getUpdates")
    telegram_group_per_minute: int = Field(20, ge=1, description="messages a minute to one group")
    telegram_bot_username: str | None = Field(None, description="the bot's @username, for invite deep links")
    telegram_rate: float | None = Field(30.0, description="messages/s over all chats (None: unpaced)")
    telegram_per_chat_rate: float | None = Field(1.0, description="messages/s to one chat")

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.telegram_token and self.telegram_mode == "webhook" and not self.telegram_webhook_url:
            raise ValueError("HUDDLE_TELEGRAM_MODE=webhook needs HUDDLE_TELEGRAM_WEBHOOK_URL")
        return self

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_telegram_accepts(cls, value: SecretStr | None) -> SecretStr | None:
        """Empty means "derive one" (never "no secret"); otherwise what setWebhook accepts: 1-256 of A-Za-z0-9_-."""
        if value is None or not value.get_secret_value().strip():
            return None
        if not SECRET_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule), or unset")
        return value

    def webhook_secret(self) -> str:
        """The secret Telegram must send with every webhook call: the configured one, or one derived from the token."""
        if self.telegram_webhook_secret is not None:
            return self.telegram_webhook_secret.get_secret_value()
        token = self.telegram_token.get_secret_value() if self.telegram_token else ""
        if not token:
            raise ValueError("no Telegram token to derive the webhook secret from")
        return hmac.new(token.encode(), b"huddle-telegram-webhook", hashlib.sha256).hexdigest()


class TelegramPolicy(ChannelPolicy):
    name = "telegram"
    capabilities = Capabilities(max_length=TELEGRAM_LIMIT, markup=Markup.TELEGRAM_HTML, buttons=True, files=False)
    address_label = "Telegram chat id"

    def __init__(self, settings: TelegramSettings | None = None) -> None:
        super().__init__()
        s = settings or TelegramSettings()
        burst = max(1, int(s.telegram_rate or 1))
        self.pacing = Pacing(s.telegram_rate, burst, s.telegram_per_chat_rate, 1, concurrency=8)

    def normalize(self, ident: str) -> str:
        ident = ident.strip()
        if not ident.lstrip("-").isdigit():
            raise ValueError(f"a Telegram chat id is a number, got {ident!r}")
        return ident

    def command_label(self, command: str) -> str:
        return f"/{command}"

    def may_enrol(self, ident: str) -> bool:
        """A group chat (negative id) is not a person."""
        return not ident.startswith("-")
