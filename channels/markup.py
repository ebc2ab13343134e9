"""Neutral markup: the one way handlers format text, rendered once per channel by the outbox.

Handlers write bodies in a tiny subset of HTML, whatever channel the reader is on:

    <b>bold</b>  <i>italic</i>  <s>struck</s>  <code>code</code>  <pre>block</pre>  <a href="URL">label</a>

Everything else is text: `a < b & c` needs no escaping, and only text that itself looks like one of
these tags is ambiguous, so data from outside (a deal name, a model's answer, a customer's text)
goes in through `esc()`. A channel adapter declares its markup in `Capabilities.markup`, the outbox
calls `render(body, markup)` once at the last step before `send`, and the adapter receives text it
can pass to its provider as it is:

* `TELEGRAM_HTML` — Telegram's HTML parse mode: the tags kept and balanced, text escaped.
* `SLACK_MRKDWN` — `*bold*`, `_italic_`, `~struck~`, `` `code` ``, ```` ```block``` ````,
  `<URL|label>`; `&`, `<`, `>` escaped as Slack asks, except Slack mentions and links written on
  purpose (`<@U123>`, `<#C123>`, `<!here>`, `<https://…|label>`).
* `PLAIN` — the visible text; a link shows its address after the label.

No reader ever sees `&lt;b&gt;`: a tag is either rendered or, on a plain channel, dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from channels.base import Markup

ALLOWED_TAGS: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "strong": frozenset(),
    "i": frozenset(),
    "em": frozenset(),
    "u": frozenset(),
    "ins": frozenset(),
    "s": frozenset(),
    "strike": frozenset(),
    "del": frozenset(),
    "tg-spoiler": frozenset(),
    "span": frozenset({"class"}),
    "a": frozenset({"href"}),
    "code": frozenset({"class"}),
    "pre": frozenset(),
    "blockquote": frozenset({"expandable"}),
}
"""Telegram's HTML subset, which is also the neutral markup (Slack and plain text degrade it)."""

_TOKEN = re.compile(
    r"<(?P<close>/)?(?P<name>[a-zA-Z][a-zA-Z0-9-]*)(?P<attrs>(?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'))?)*)\s*>"
    r"|&(?P<entity>#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot);"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")


@dataclass(slots=True)
class Tag:
    name: str
    raw: str
    """The tag as Telegram HTML, attributes filtered and escaped."""
    attrs: dict[str, str]


@dataclass(slots=True)
class Text:
    text: str
    """Visible (unescaped) text."""


@dataclass(frozen=True, slots=True)
class Close:
    name: str


Token = Tag | Text | Close


def tokens(body: str) -> list[Token]:
    """Visible text, allowed tags and their closings, balanced (unclosed tags closed at the end)."""
    out: list[Token] = []
    stack: list[str] = []
    pos = 0

    def text(s: str) -> None:
        if s:
            out.append(Text(s))

    for m in _TOKEN.finditer(body):
        text(body[pos : m.start()])
        pos = m.end()
        if m.group("entity"):
            try:
                text(html.unescape(f"&{m.group('entity')};"))
            except (ValueError, OverflowError):
                text(m.group(0))
            continue
        name = m.group("name").lower()
        if name not in ALLOWED_TAGS:
            text(m.group(0))
            continue
        if m.group("close"):
            if name in stack:
                while stack:
                    top = stack.pop()
                    out.append(Close(top))
                    if top == name:
                        break
            else:
                text(m.group(0))
            continue
        attrs: dict[str, str] = {}
        rendered = []
        for a in _ATTR.finditer(m.group("attrs") or ""):
            key = a.group(1).lower()
            value = a.group(2) if a.group(2) is not None else a.group(3)
            if key not in ALLOWED_TAGS[name]:
                continue
            attrs[key] = html.unescape(value or "")
            rendered.append(key if value is None else f'{key}="{html.escape(html.unescape(value), quote=True)}"')
        if (name == "pre" and "pre" in stack) or (name == "a" and "a" in stack):
            text(m.group(0))  # Telegram refuses nested <pre> / <a>
            continue
        out.append(Tag(name, f"<{name}{''.join(' ' + a for a in rendered)}>", attrs))
        stack.append(name)
    text(body[pos:])
    while stack:
        out.append(Close(stack.pop()))
    return out


def esc(text: object) -> str:
    """Data as neutral markup: shown exactly as written on every channel."""
    return html.escape(str(text), quote=False)


# -- renderers -----------------------------------------------------------------------------------


def to_telegram(body: str) -> str:
    return "".join(_telegram(t) for t in tokens(body))


def _telegram(t: Token) -> str:
    if isinstance(t, Text):
        return html.escape(t.text, quote=False)
    if isinstance(t, Tag):
        return t.raw
    return f"</{t.name}>"


def to_plain(body: str) -> str:
    out: list[str] = []
    links: list[tuple[int, str]] = []
    for t in tokens(body):
        if isinstance(t, Text):
            out.append(t.text)
        elif isinstance(t, Tag) and t.name == "a":
            links.append((len(out), t.attrs.get("href", "")))
        elif isinstance(t, Close) and t.name == "a" and links:
            start, href = links.pop()
            label = "".join(out[start:])
            if href and href != label.strip():
                out.append(f" ({href})")
    return "".join(out)


_SLACK_MARK = {"b": "*", "strong": "*", "i": "_", "em": "_", "s": "~", "strike": "~", "del": "~",
               "code": "`", "pre": "```"}
_SLACK_KEEP = re.compile(r"<(?:[@#!]|https?://|mailto:)[^<>\s]*(?:\|[^<>]*)?>")


def slack_escape(text: str) -> str:
    """`&`, `<`, `>` as Slack asks, but mentions and links a handler wrote on purpose kept."""
    pieces: list[str] = []
    pos = 0
    for m in _SLACK_KEEP.finditer(text):
        pieces.append(text[pos : m.start()].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        pieces.append(m.group(0))
        pos = m.end()
    pieces.append(text[pos:].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(pieces)


def _slack_span(name: str, content: str) -> str:
    """Marks hug the words (`*bold* text`, not `* bold *`): Slack ignores marks next to spaces."""
    mark = _SLACK_MARK.get(name)
    if mark is None or not content.strip():
        return content
    lead = content[: len(content) - len(content.lstrip())]
    trail = content[len(content.rstrip()) :]
    return f"{lead}{mark}{content.strip()}{mark}{trail}"


def render(body: str, markup: Markup) -> str:
    """Neutral markup as the channel's markup (the outbox calls this once per message)."""
    if markup is Markup.TELEGRAM_HTML:
        return to_telegram(body)
    if markup is Markup.SLACK_MRKDWN:
        return _render_slack(body)
    return to_plain(body)


def _render_slack(body: str) -> str:
    """Slack mrkdwn: spans become marks, links `<URL|label>`, text escaped."""
    out: list[str] = []
    opened: list[tuple[Tag, int]] = []
    for t in tokens(body):
        if isinstance(t, Text):
            out.append(slack_escape(t.text))
        elif isinstance(t, Tag):
            opened.append((t, len(out)))
        elif opened:
            tag, start = opened.pop()
            content = "".join(out[start:])
            del out[start:]
            if tag.name == "a":
                href = tag.attrs.get("href", "").replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
                href = href.replace("&", "&amp;")
                label = content.replace("|", "¦")
                out.append(f"<{href}|{label}>" if href and label.strip() else (label or href))
            else:
                out.append(_slack_span(tag.name, content))
    return "".join(out)


__all__ = ["ALLOWED_TAGS", "Close", "Tag", "Text", "Token", "esc", "render", "slack_escape", "to_plain",
           "to_telegram", "tokens"]
