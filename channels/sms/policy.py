"""What Huddle knows about SMS, whether or not a modem is attached to this process.

Addresses are phone numbers in E.164; an alphanumeric sender (`AMAZON`) is kept as received and
can be neither answered nor enrolled. Commands are typed in capitals (`STALE 5`). Carrier rules
apply: STOP/START/HELP before any handler, and quiet hours for proactive texts.
"""

from __future__ import annotations

from bot.model import Outbound, OutboundKind
from bot.phones import SenderKind, normalize_phone, normalize_sender, sender_kind
from channels.base import Capabilities, ChannelPolicy, Keyword, Markup, Pacing
from channels.sms import pdu


class SmsPolicy(ChannelPolicy):
    name = "sms"
    capabilities = Capabilities(max_length=pdu.MULTI_SEPTETS * pdu.DEFAULT_MAX_PARTS, markup=Markup.PLAIN)
    pacing = Pacing(concurrency=4)
    """The modem sends one part at a time (a lock in the sender); letting the outbox hand over a
    few messages at once keeps the next one ready and spares a claim per message."""
    texting = True
    address_label = "phone number"
    local_device = True
    """The modem hangs off the store PC's USB port: it runs in that machine's gateway."""

    def __init__(self, *, rate: float | None = None, **overrides: object) -> None:
        super().__init__(**overrides)  # type: ignore[arg-type]
        if rate is not None:
            self.pacing = Pacing(rate, 1, concurrency=1)

    def normalize(self, ident: str) -> str:
        """E.164 in the store's region (raises for anything that is not a phone number)."""
        return normalize_phone(ident.strip())

    def sender(self, ident: str) -> str:
        """E.164 for a phone, the digits of a short code, else the alphanumeric name as sent."""
        return normalize_sender(ident)

    def command_label(self, command: str) -> str:
        return command.upper()

    def keyword(self, text: str) -> Keyword | None:
        return texting_keyword(text)

    def refuses(self, outbound: Outbound) -> str | None:
        """An alphanumeric sender (AMAZON) cannot be texted; a short code may be answered, never marketed to."""
        kind = sender_kind(outbound.address.id)
        if not kind.can_reply:
            return f"cannot text {kind.value.replace('_', ' ')} sender {outbound.address.id!r}"
        if kind is SenderKind.SHORT_CODE and outbound.kind is OutboundKind.PROACTIVE and not outbound.compliance:
            return "short codes get no marketing (proactive message refused)"
        return None

    def machine_sender(self, ident: str) -> str | None:
        kind = sender_kind(ident)
        return None if kind is SenderKind.PHONE else kind.value

    def can_reply(self, ident: str) -> bool:
        return sender_kind(ident) is not SenderKind.ALPHANUMERIC

    def may_enrol(self, ident: str) -> bool:
        return sender_kind(ident) is SenderKind.PHONE

    def allows_proactive(self, ident: str) -> bool:
        return sender_kind(ident) is SenderKind.PHONE


def texting_keyword(text: str) -> Keyword | None:
    """Opting back in and HELP need their own word; opting out follows `optout` (FCC 24-18)."""
    from channels.sms import optout  # its rules compile on the first text, not for every command

    if optout.is_opt_in(text):
        return Keyword("opt_in", optout.normalise(text)[:32])
    if optout.is_help(text):
        return Keyword("help", optout.normalise(text)[:32])
    found = optout.match(text)
    if found is not None:
        return Keyword("opt_out", f"{found.rule}:{found.sentence}"[:32])
    return None
