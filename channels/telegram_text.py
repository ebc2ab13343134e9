"""Telegram HTML for message bodies: make any body safe to send, and split it at the length limit.

Bodies on the telegram channel may carry Telegram's HTML subset (`<b>`, `<i>`, `<code>`, `<a
href>`, …) so that handlers written for Telegram can format; every other `<`, `>` or `&` is
escaped. A plain-text body therefore arrives exactly as written, and a handler that means markup
gets it. The only ambiguity left: plain text that itself looks like an allowed tag (`<b>`).

Splitting happens on the visible text (what Telegram counts, in UTF-16 code units): at line
breaks where possible, else at a space, else anywhere but inside a surrogate pair; open tags are
closed at the end of a part and reopened at the start of the next, so each part parses alone.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

TELEGRAM_LIMIT = 4096
"""Longest message text, counted after entity parsing, in UTF-16 code units."""

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

_TOKEN = re.compile(
    r"<(?P<close>/)?(?P<name>[a-zA-Z][a-zA-Z0-9-]*)(?P<attrs>(?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'))?)*)\s*>"
    r"|&(?P<entity>#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot);"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(slots=True)
class _Tag:
    name: str
    raw: str


@dataclass(slots=True)
class _Text:
    text: str
    """Visible (unescaped) text."""


Token = _Tag | _Text


def _tokens(body: str) -> list[Token | tuple[str, str]]:
    """Split into visible text, allowed tags (balanced) and closing markers ("/", name)."""
    out: list[Token | tuple[str, str]] = []
    stack: list[str] = []
    pos = 0

    def text(s: str) -> None:
        if s:
            out.append(_Text(s))

    for m in _TOKEN.finditer(body):
        text(body[pos : m.start()])
        pos = m.end()
        if m.group("entity"):
            ent = m.group("entity")
            try:
                text(html.unescape(f"&{ent};"))
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
                    out.append(("/", top))
                    if top == name:
                        break
            else:
                text(m.group(0))
            continue
        attrs = []
        for a in _ATTR.finditer(m.group("attrs") or ""):
            key = a.group(1).lower()
            value = a.group(2) if a.group(2) is not None else a.group(3)
            if key not in ALLOWED_TAGS[name]:
                continue
            attrs.append(key if value is None else f'{key}="{html.escape(value, quote=True)}"')
        if (name == "pre" and "pre" in stack) or (name == "a" and "a" in stack):
            text(m.group(0))  # Telegram refuses nested <pre> / <a>
            continue
        out.append(_Tag(name, f"<{name}{''.join(' ' + a for a in attrs)}>"))
        stack.append(name)
    text(body[pos:])
    while stack:
        out.append(("/", stack.pop()))
    return out


def sanitize(body: str) -> str:
    """The body as valid Telegram HTML: allowed tags kept and balanced, everything else escaped."""
    return "".join(_render(t) for t in _tokens(body))


def _render(token: Token | tuple[str, str]) -> str:
    if isinstance(token, _Text):
        return html.escape(token.text, quote=False)
    if isinstance(token, _Tag):
        return token.raw
    return f"</{token[1]}>"


def plain(body: str) -> str:
    """The visible text of a body (for the no-markup fallback)."""
    return "".join(t.text for t in _tokens(body) if isinstance(t, _Text))


def _cut(text: str, room: int) -> tuple[int, int]:
    """Where the head ends and the tail starts so the head fits `room` UTF-16 units.

    At the last space (which is dropped) when there is one in the second half, else as late as
    fits, never inside a surrogate pair.
    """
    units = 0
    hard = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > room:
            break
        hard = i + 1
    space = text.rfind(" ", 0, hard + 1)
    if space > hard // 2:
        return space, space + 1
    return max(hard, 1), max(hard, 1)


def split_html(body: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Sanitize and split into parts of at most `limit` visible characters, each valid alone."""
    tokens = _tokens(body)
    # Lines: a run of tokens ending just after a "\n" (the newline stays with its line).
    lines: list[list[Token | tuple[str, str]]] = [[]]
    for t in tokens:
        if isinstance(t, _Text) and "\n" in t.text:
            pieces = t.text.split("\n")
            for j, piece in enumerate(pieces):
                last = j == len(pieces) - 1
                if piece or not last:
                    lines[-1].append(_Text(piece if last else piece + "\n"))
                if not last:
                    lines.append([])
        else:
            lines[-1].append(t)

    parts: list[str] = []
    current: list[str] = []
    used = 0
    stack: list[_Tag] = []

    def flush() -> None:
        nonlocal current, used
        visible = used > 0
        closing = "".join(f"</{t.name}>" for t in reversed(stack))
        if visible:
            parts.append(("".join(current) + closing).strip("\n"))
        current = [t.raw for t in stack]
        used = 0

    def put(t: Token | tuple[str, str]) -> None:
        nonlocal used
        if isinstance(t, _Tag):
            stack.append(t)
        elif isinstance(t, tuple):
            if stack and stack[-1].name == t[1]:
                stack.pop()
        else:
            used += utf16_len(t.text)
        current.append(_render(t))

    for line in lines:
        size = sum(utf16_len(t.text) for t in line if isinstance(t, _Text))
        if used and used + size > limit:
            flush()
        for t in line:
            if not isinstance(t, _Text):
                put(t)
                continue
            rest = t.text
            while utf16_len(rest) > limit - used:
                room = limit - used
                if room <= 0 or (used and not rest.strip()):
                    flush()
                    continue
                head, tail = _cut(rest, room)
                put(_Text(rest[:head]))
                rest = rest[tail:]
                flush()
            if rest:
                put(_Text(rest))
    flush()
    return [p for p in parts if plain(p).strip()]


__all__ = ["ALLOWED_TAGS", "TELEGRAM_LIMIT", "plain", "sanitize", "split_html", "utf16_len"]
