"""Telegram HTML bodies split at the length limit (the markup itself comes from channels/markup.py).

The outbox renders every body to Telegram HTML before the adapter sees it; `split_html` is
idempotent on that output and also makes any other body safe (`sanitize`), so the adapter can be
used on its own.

Splitting happens on the visible text (what Telegram counts, in UTF-16 code units): at line
breaks where possible, else at a space, else anywhere but inside a surrogate pair; open tags are
closed at the end of a part and reopened at the start of the next, so each part parses alone.
"""

from __future__ import annotations

import html

from channels.markup import ALLOWED_TAGS, Close, Tag, Text, Token, to_telegram, tokens

TELEGRAM_LIMIT = 4096
"""Longest message text, counted after entity parsing, in UTF-16 code units."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def sanitize(body: str) -> str:
    """The body as valid Telegram HTML: allowed tags kept and balanced, everything else escaped."""
    return to_telegram(body)


def _render(token: Token) -> str:
    if isinstance(token, Text):
        return html.escape(token.text, quote=False)
    if isinstance(token, Tag):
        return token.raw
    return f"</{token.name}>"


def plain(body: str) -> str:
    """The visible text of a body (for the no-markup fallback)."""
    return "".join(t.text for t in tokens(body) if isinstance(t, Text))


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
    toks = tokens(body)
    # Lines: a run of tokens ending just after a "\n" (the newline stays with its line).
    lines: list[list[Token]] = [[]]
    for t in toks:
        if isinstance(t, Text) and "\n" in t.text:
            pieces = t.text.split("\n")
            for j, piece in enumerate(pieces):
                last = j == len(pieces) - 1
                if piece or not last:
                    lines[-1].append(Text(piece if last else piece + "\n"))
                if not last:
                    lines.append([])
        else:
            lines[-1].append(t)

    parts: list[str] = []
    current: list[str] = []
    used = 0
    stack: list[Tag] = []

    def flush() -> None:
        nonlocal current, used
        visible = used > 0
        closing = "".join(f"</{t.name}>" for t in reversed(stack))
        if visible:
            parts.append(("".join(current) + closing).strip("\n"))
        current = [t.raw for t in stack]
        used = 0

    def put(t: Token) -> None:
        nonlocal used
        if isinstance(t, Tag):
            stack.append(t)
        elif isinstance(t, Close):
            if stack and stack[-1].name == t.name:
                stack.pop()
        else:
            used += utf16_len(t.text)
        current.append(_render(t))

    for line in lines:
        size = sum(utf16_len(t.text) for t in line if isinstance(t, Text))
        if used and used + size > limit:
            flush()
        for t in line:
            if not isinstance(t, Text):
                put(t)
                continue
            rest = t.text
            while utf16_len(rest) > limit - used:
                room = limit - used
                if room <= 0 or (used and not rest.strip()):
                    flush()
                    continue
                head, tail = _cut(rest, room)
                put(Text(rest[:head]))
                rest = rest[tail:]
                flush()
            if rest:
                put(Text(rest))
    flush()
    return [p for p in parts if plain(p).strip()]


__all__ = ["ALLOWED_TAGS", "TELEGRAM_LIMIT", "plain", "sanitize", "split_html", "utf16_len"]
