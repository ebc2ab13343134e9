"""Slack's text rules, both ways: what people typed back to plain words, and bodies out to mrkdwn/blocks.

Bodies arrive already rendered to mrkdwn by the outbox (channels/markup.py). Slack escapes `&`,
`<` and `>` in everything it sends, wraps links and mentions in `<...>`, and
limits a message to 40,000 characters, a section block to 3,000 and a button label to 75. These
pure functions keep the adapter itself about protocol only.
"""

from __future__ import annotations

import re
from typing import Any

from bot.model import Button
from channels.markup import slack_escape

MAX_TEXT = 40_000
"""chat.postMessage truncates `text` beyond this; longer bodies go out as several messages."""
MAX_SECTION = 3_000
MAX_BLOCKS = 50
MAX_BUTTONS_PER_ACTIONS = 25
MAX_BUTTON_LABEL = 75
MAX_BUTTON_VALUE = 2_000

_ENTITY = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


def inbound_text(text: str, bot_user_id: str | None = None) -> str:
    """Plain words from a Slack message: the bot's mention dropped, links unwrapped, quotes straightened."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>:?", " ", text)

    def entity(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if label:
            return label
        if target.startswith("mailto:"):
            return target[len("mailto:") :]
        return target

    text = _ENTITY.sub(entity, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = text.translate(_QUOTES)  # a phone's smart quotes must not break `alias "A" = "B"`
    return " ".join(text.split()) if "\n" not in text else text.strip()


def escape_mrkdwn(body: str) -> str:
    """Escape `&`, `<`, `>` as Slack asks, but keep links and mentions a handler wrote on purpose."""
    return slack_escape(body)


def split_text(text: str, limit: int) -> list[str]:
    """Cut a long body into pieces of at most `limit` characters, at line breaks where possible."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
            # never cut inside an emoji sequence (joiner, variation selector, skin tone)
            while cut > 1 and _joins(rest[cut - 1], rest[cut]):
                cut -= 1
        parts.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:].lstrip("\n") if rest[cut : cut + 1] == "\n" else rest[cut:]
    if rest:
        parts.append(rest)
    return parts


def _joins(left: str, right: str) -> bool:
    """True when cutting between these two characters would break one visible symbol."""
    return right in "\u200d\ufe0f" or left == "\u200d" or 0x1F3FB <= ord(right) <= 0x1F3FF


def blocks_for(text: str, buttons: list[Button]) -> list[dict[str, Any]]:
    """Section blocks for the text, then actions blocks with one Block Kit button per `Button`."""
    blocks: list[dict[str, Any]] = []
    if text.strip():
        for piece in split_text(text, MAX_SECTION):
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    for start in range(0, len(buttons), MAX_BUTTONS_PER_ACTIONS):
        chunk = buttons[start : start + MAX_BUTTONS_PER_ACTIONS]
        blocks.append(
            {
                "type": "actions",
                "block_id": f"huddle-actions-{start // MAX_BUTTONS_PER_ACTIONS}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"huddle-{start + i}",
                        "text": {"type": "plain_text", "text": _label(b.text), "emoji": True},
                        "value": b.data[:MAX_BUTTON_VALUE],
                    }
                    for i, b in enumerate(chunk)
                ],
            }
        )
    return blocks[:MAX_BLOCKS]


def _label(text: str) -> str:
    text = text.strip() or "…"
    return text if len(text) <= MAX_BUTTON_LABEL else text[: MAX_BUTTON_LABEL - 1] + "…"
