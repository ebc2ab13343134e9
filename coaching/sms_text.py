"""Keeping replies within a number of SMS segments.

One segment holds 160 GSM-7 characters or 70 UCS-2 code units; a concatenated message loses room
to the header: 153 / 67 per part. So two segments are 306 GSM-7 characters (extension characters
such as `€[]{}|^~\\` count twice) or 134 UCS-2 code units (an emoji outside the BMP counts two).
"""

from __future__ import annotations

import re

GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")

_ASCII = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "•": "-",
                        "\u00a0": " ", "\u2009": " ", "\u202f": " "})


def plain(text: str) -> str:
    """Typographic punctuation → GSM-7 equivalents, so a model's curly quote doesn't halve the room."""
    return text.translate(_ASCII)


def is_gsm(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def units(text: str) -> tuple[int, bool]:
    """(length in the encoding's units, is GSM-7)."""
    if is_gsm(text):
        return sum(2 if c in GSM_EXTENDED else 1 for c in text), True
    return len(text.encode("utf-16-le")) // 2, False


def segments(text: str) -> int:
    n, gsm = units(text)
    single, multi = (160, 153) if gsm else (70, 67)
    return 1 if n <= single else -(-n // multi)


def limit_for(text: str, parts: int) -> int:
    _, gsm = units(text)
    if parts == 1:
        return 160 if gsm else 70
    return (153 if gsm else 67) * parts


def fit(text: str, parts: int = 2) -> str:
    """The text, cut at a sentence or word boundary (with "...") so it fits in `parts` segments."""
    text = re.sub(r"[ \t]+", " ", plain(text)).strip()
    if segments(text) <= parts:
        return text
    limit = limit_for(text, parts) - 3
    cut = ""
    for ch in text:  # grow by characters so surrogate pairs and escapes are counted right
        if units(cut + ch)[0] > limit:
            break
        cut += ch
    sentence = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind("\n"))
    if sentence >= len(cut) * 0.6:
        return cut[: sentence + 1].rstrip()
    space = cut.rfind(" ")
    if space > len(cut) * 0.5:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "..."
