"""The Inflow export in the shapes real exports take, and the files we must refuse."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from coaching.sources.inflow_csv import (
    CsvError,
    normalize_header,
    parse_day,
    parse_duration_seconds,
    parse_hours,
    parse_inflow_csv,
    parse_money,
    parse_percent,
)

CANONICAL = (
    "Name,Group,Sales,CVR,Unlock rate,Golden ratio,Msg/hr,Reply time,Fans chatted,PPVs sent,PPVs unlocked\n"
    "Ana Ruiz,Team North,$1234.50,12.5%,40%,25%,48,1m 30s,120,80,32\n"
    "Bea Costa,Team North,300,0.08,0.3,0.2,30,95,90,50,15\n"
)


def test_canonical_export() -> None:
    parsed = parse_inflow_csv(CANONICAL.encode())
    ana, bea = parsed.rows
    assert ana.name == "Ana Ruiz" and ana.group == "Team North"
    assert ana.sales == Decimal("1234.50")
    assert ana.cvr == pytest.approx(0.125) and ana.unlock_rate == pytest.approx(0.40)
    assert ana.reply_time_s == 90 and ana.fans_chatted == 120 and ana.ppvs_unlocked == 32
    assert bea.cvr == pytest.approx(0.08) and bea.reply_time_s == 95
    assert parsed.delimiter == ","


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_are_sniffed(delimiter: str) -> None:
    text = CANONICAL.replace(",", delimiter)
    if delimiter == ";":  # a European export writes every decimal with a comma
        text = text.replace(".", ",").replace("$1234,50", "$1.234,50")
    parsed = parse_inflow_csv(text.encode())
    assert parsed.delimiter == delimiter
    assert parsed.rows[0].sales == Decimal("1234.50")


def test_bom_and_utf16_and_cp1252() -> None:
    assert parse_inflow_csv(b"\xef\xbb\xbf" + CANONICAL.encode()).rows[0].name == "Ana Ruiz"
    utf16 = CANONICAL.replace(",", "\t").encode("utf-16")
    assert parse_inflow_csv(utf16).rows[1].name == "Bea Costa"
    latin = "Name,Sales\nJosé Núñez,10\n".encode("cp1252")
    assert parse_inflow_csv(latin).rows[0].name == "José Núñez"


def test_header_aliases_and_units() -> None:
    text = ("Chatter Name;Total Sales ($);Conversion Rate (%);Unlock %;Golden;Messages per Hour;"
            "Avg Reply Time (min);Fans;PPV Sent;Unlocks;Team;Date\n"
            "Ana Ruiz;$1,234.50;12.5;0.4;25%;48;1.5;120;80;32;North;2026-11-22\n")
    row = parse_inflow_csv(text).rows[0]
    assert row.sales == Decimal("1234.50")
    assert row.cvr == pytest.approx(0.125)
    assert row.unlock_rate == pytest.approx(0.4)
    assert row.golden_ratio == pytest.approx(0.25)
    assert row.msgs_per_hr == 48
    assert row.reply_time_s == 90
    assert row.group == "North" and row.day == date(2026, 11, 22)
    assert normalize_header("Total Sales ($)") == "total sales"
    assert normalize_header("Revenue") == "revenue"


def test_blank_and_total_lines_are_skipped_and_missing_values_are_none() -> None:
    text = "Name,Sales,CVR\n\nAna Ruiz,100,N/A\n,,\nTotal,100,\n"
    parsed = parse_inflow_csv(text)
    assert [r.name for r in parsed.rows] == ["Ana Ruiz"]
    assert parsed.rows[0].cvr is None
    assert parsed.skipped == 3


def test_preamble_lines_before_the_header() -> None:
    text = "Inflow export\nGenerated 2026-11-22\nName,Sales\nAna,5\n"
    assert parse_inflow_csv(text).rows[0].sales == Decimal("5.00")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("$1,234.50", "1234.50"), ("1.234,50", "1234.50"), ("1 234", "1234.00"), ("(12.00)", "-12.00"),
     ("€99", "99.00"), ("1234", "1234.00"), ("12,5", "12.50")],
)
def test_money(raw: str, expected: str) -> None:
    assert parse_money(raw) == Decimal(expected)


@pytest.mark.parametrize(("raw", "expected"), [("12.5%", 0.125), ("0.125", 0.125), ("12.5", 0.125), ("1", 1.0),
                                               ("12,5 %", 0.125)])
def test_percent(raw: str, expected: float) -> None:
    assert parse_percent(raw) == pytest.approx(expected)


@pytest.mark.parametrize(("raw", "expected"), [("1m 30s", 90), ("90", 90), ("90s", 90), ("1:30", 90),
                                               ("00:01:30", 90), ("1.5 min", 90), ("2m", 120), ("1h 2m", 3720)])
def test_reply_time(raw: str, expected: float) -> None:
    assert parse_duration_seconds(raw) == expected


def test_hours_and_dates() -> None:
    assert parse_hours("7:30") == 7.5 and parse_hours("7.5") == 7.5 and parse_hours("7h 30m") == 7.5
    assert parse_day("11/22/2026") == date(2026, 11, 22)
    assert parse_day("22/11/2026") == date(2026, 11, 22)
    assert parse_day("22.11.2026") == date(2026, 11, 22)
    assert parse_day("2026-11-22T00:00:00Z") == date(2026, 11, 22)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"Sales,CVR\n1,2\n", "names"),
        (b"Name,Favourite colour\nAna,blue\n", "none of the numbers"),
        (b"Name,Sales\n", "no chatters"),
        (b"PK\x03\x04\x00\x00binary", "isn't a CSV"),
        (b"Name,Sales,CVR\nAna,$abc,10%\nBea,5,lots\n", "saved nothing"),
    ],
)
def test_bad_files_are_refused_in_plain_words(data: bytes, words: str) -> None:
    with pytest.raises(CsvError) as err:
        parse_inflow_csv(data)
    assert words in str(err.value)
    assert "Traceback" not in str(err.value)


def test_bad_value_message_names_line_and_column() -> None:
    with pytest.raises(CsvError) as err:
        parse_inflow_csv("Name,Sales\nAna Ruiz,$abc\n")
    assert "line 2" in str(err.value) and "Sales" in str(err.value) and "Ana Ruiz" in str(err.value)


def test_huge_emoji_name_is_kept_as_text() -> None:
    name = "😀" * 5000
    parsed = parse_inflow_csv(f"Name,Sales\n{name},5\n".encode())
    assert parsed.rows[0].name == name
