"""Telegram HTML: plain text survives as written, allowed markup is kept, long bodies split cleanly."""

from __future__ import annotations

import pytest

from channels.telegram_text import TELEGRAM_LIMIT, plain, sanitize, split_html, utf16_len
from tests.fakes.telegram_server import parse_html


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("a < b & c > d", "a < b & c > d"),
        ("use <script>alert(1)</script>", "use <script>alert(1)</script>"),
        ("Tom & Jerry &amp; co &nbsp;", "Tom & Jerry & co &nbsp;"),
        ("'<5>' is not a valid DAYS.", "'<5>' is not a valid DAYS."),
        ("<b>Deal 17</b> — <i>stale</i>", "Deal 17 — stale"),
        ("<b>never closed", "never closed"),
        ("stray </b> close", "stray </b> close"),
        ("<b><i>crossed</b></i>", "crossed</i>"),
    ],
)
def test_any_body_becomes_valid_telegram_html(body: str, shown: str) -> None:
    html = sanitize(body)
    assert parse_html(html) == shown
    assert plain(body) == shown


def test_allowed_markup_and_attributes_are_kept() -> None:
    html = sanitize('<b>x</b> <a href="https://crm.example/deal?id=1&x=2" onclick="evil()">deal</a> <code>c</code>')
    assert html == '<b>x</b> <a href="https://crm.example/deal?id=1&amp;x=2">deal</a> <code>c</code>'


def test_nine_thousand_characters_split_in_three_on_line_boundaries() -> None:
    lines = [f"{i:03d} " + "x" * 85 for i in range(100)]  # 100 lines of 89 characters
    parts = split_html("\n".join(lines))
    assert len(parts) == 3
    assert all(len(p) <= TELEGRAM_LIMIT for p in parts)
    assert [line for p in parts for line in p.split("\n")] == lines


def test_split_keeps_tags_balanced_in_every_part() -> None:
    body = "<b>" + "\n".join("word " * 15 for _ in range(200)) + "</b>"
    parts = split_html(body)
    assert len(parts) > 1
    for p in parts:
        assert p.startswith("<b>") and p.endswith("</b>")
        assert utf16_len(parse_html(p)) <= TELEGRAM_LIMIT


def test_one_huge_line_splits_at_spaces_then_anywhere() -> None:
    words = split_html("word " * 2000)
    assert all(p.rstrip().endswith("word") and p.startswith("word") for p in words)
    solid = split_html("x" * 9000)
    assert [len(p) for p in solid] == [4096, 4096, 808]


def test_emoji_count_as_two_and_are_never_cut_in_half() -> None:
    parts = split_html("😀" * 5000)
    assert [utf16_len(p) for p in parts] == [4096, 4096, 1808]
    assert "".join(parts) == "😀" * 5000


def test_escaping_counts_visible_characters_not_entities() -> None:
    parts = split_html("&" * 5000)
    assert [len(parse_html(p)) for p in parts] == [4096, 904]


def test_blank_body_gives_nothing_to_send() -> None:
    assert split_html("  \n\n ") == []
    assert split_html("<b></b>") == []
