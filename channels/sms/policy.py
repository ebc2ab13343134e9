"""What Huddle knows about SMS, whether or not a modem is attached to this process.

Addresses are phone numbers in E.164; an alphanumeric sender (`AMAZON`) is kept as received and
can be neither answered nor enrolled. Commands are typed in capitals (`STALE 5`). Carrier rules
apply: STOP/START/HELP before any handler, and quiet hours for proactive texts.
"""

from __future__ import annotations

from bot.phones import normalize_phone
from channels.base import Capabilities, ChannelPolicy, Markup, Pacing
from channels.sms import pdu


class SmsPolicy(ChannelPolicy):
    name = "sms"
    capabilities = Capabilities(max_length=pdu.MULTI_SEPTETS * pdu.DEFAULT_MAX_PARTS, markup=Markup.PLAIN)
    pacing = Pacing(concurrency=4)
    """The modem sends one part at a time (a lock in the sender); letting the outbox hand over a
    few messages at once keeps the next one ready and spares a claim per message."""
    texting = True
    address_label = "phone number"
    region = "US"

    def __init__(self, *, region: str = "US", rate: float | None = None, **overrides: object) -> None:
        super().__init__(**overrides)  # type: ignore[arg-type]
        self.region = region
        if rate is not None:
            self.pacing = Pacing(rate, 1, concurrency=1)

    def normalize(self, ident: str) -> str:
        """E.164 (raises for anything else: an alphanumeric sender is kept as received, never typed)."""
        return normalize_phone(ident.strip(), self.region)

    def command_label(self, command: str) -> str:
        return command.upper()

    def can_reply(self, ident: str) -> bool:
        return not is_alphanumeric(ident)

    def may_enrol(self, ident: str) -> bool:
        return not is_alphanumeric(ident)


def is_alphanumeric(ident: str) -> bool:
    """A sender name rather than a number (`AMAZON`, `O2`, `Store 42`)."""
    return any(c.isalpha() for c in ident)
