"""The Inflow export in the shapes real exports take, and the files we must refuse."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from babel.numbers import format_currency, format_decimal, format_percent

from coaching.sources.csv_rows import MixedDecimals, NumberSample, decide_decimal, parse_decimal, records
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


# -- the decimal mark, decided per file, against material nobody here wrote ----------------------

# Deutsche Bank "Umsätze" export, verbatim from the anonymised sample in the RechnungsFee project
# (github.com/nicolettas-muggelbude/RechnungsFee, vorlagen/bank-csv/deutsche-bank.csv). It checks
# itself: the opening balance plus every Betrag must give the closing balance.
DEUTSCHE_BANK = (
    "Umsätze\nKonto;Filial-/Kontonummer;IBAN;Währung\nBusiness BasicKonto;330 1234567 00;DE04480700240123456700;EUR\n"
    "\n1.2.2026 - 28.2.2026\nLetzter Kontostand;;;;1.199,38;EUR\n"
    "Vorgemerkte und noch nicht gebuchte Umsätze sind nicht Bestandteil dieser Übersicht.\n"
    "Buchungstag;Wert;Umsatzart;Begünstigter / Auftraggeber;Verwendungszweck;IBAN / Kontonummer;BIC;Kundenreferenz;"
    "Mandatsreferenz;Gläubiger ID;Fremde Gebühren;Betrag;Abweichender Empfänger;Anzahl der Aufträge;"
    "Anzahl der Schecks;Soll;Haben;Währung\n"
    "25.2.2026;25.2.2026;SEPA Überweisung;Max Mustermann GmbH;REIND260105397;DE78864444921100748888;;NOTPROVIDED;;;;"
    "2.688,15;Max Mustermann GmbH;;;;2.688,15;EUR\n"
    "23.2.2026;23.2.2026;SEPA Lastschrift;Max Mustermann GmbH;RED260105397;DE87304444000008996811;;"
    "C56444670+U775555695;43786D6DEA155555B17C8555DE;DE40ZZ555550205556;;-4,99;;;;-4,99;;EUR\n"
    "Kontostand;28.2.2026;;;3.882,54;EUR\n"
)
# ING "Umsatzanzeige" test export from the same project (docs/testdaten/ing-test.csv).
ING = (
    "Umsatzanzeige;;\n;;\nKontonummer:;DE12 3456 7890 1234 5678 90 / Girokonto;\n;;\nVon:;01.01.2026;\n"
    "Bis:;31.01.2026;\nKontostand vom 31.01.2026:;5.234,56 EUR;\n;;\n;;\n;;\n;;\n;;\n;;\n"
    "Buchung;Valuta;Auftraggeber/Empfänger;Buchungstext;Verwendungszweck;Betrag;Glaeubiger ID;Mandats ID;IBAN\n"
    "04.01.2026;04.01.2026;Muster GmbH;Gutschrift;Honorar Dezember Nachzahlung;1.785,00;;;DE98765432109876543210\n"
    "09.01.2026;09.01.2026;GitHub Inc;Lastschrift;GitHub Pro Abo;-4,00;;;DE11222233334444555566\n"
    "16.01.2026;16.01.2026;Beispiel UG;Gutschrift;Rechnung RE-260004;892,50;;;DE33444455556666777788\n"
    "21.01.2026;21.01.2026;Stadtwerke GmbH;Lastschrift;Stromabschlag Januar;-98,00;;;DE77888899990000111122\n"
    "26.01.2026;26.01.2026;DATEV eG;Lastschrift;DATEV Unternehmen online;-22,50;;;DE55666677778888999900\n"
)


def _column(text: str, header_word: str, column: str) -> list[NumberSample]:
    recs = list(records(io.StringIO(text, newline=""), delimiter=";"))
    at = next(i for i, r in enumerate(recs) if header_word in r.cells)
    idx = recs[at].cells.index(column)
    return [NumberSample(r.start, column, r.cells[idx]) for r in recs[at + 1:] if len(r.cells) > idx and r.cells[idx]]


def test_a_real_german_bank_export_adds_up_when_read_with_its_own_decimal_mark() -> None:
    amounts = _column(DEUTSCHE_BANK, "Buchungstag", "Betrag")
    assert decide_decimal(amounts, ";") == ","
    opening, closing = parse_decimal("1.199,38", ","), parse_decimal("3.882,54", ",")
    assert opening + sum(parse_decimal(s.raw, ",") for s in amounts) == closing
    ing = _column(ING, "Buchung", "Betrag")
    assert decide_decimal(ing, ";") == ","
    assert [parse_decimal(s.raw, ",") for s in ing] == [Decimal("1785.00"), Decimal("-4.00"), Decimal("892.50"),
                                                        Decimal("-98.00"), Decimal("-22.50")]
    assert parse_decimal("5.234,56 EUR", ",") == Decimal("5234.56")


@pytest.mark.parametrize(
    ("cells", "delimiter", "mark"),
    [
        # DuckDB's test data (data/csv/decimal_separators/decimal_separators.csv), column "commas"
        (["1,1", "0,25"], ";", ","),
        # pandas' test_1000_sep_with_decimal: "2.334,01" with thousands "." and decimal ","
        (["2.334,01", "13"], "|", ","),
        (["2,334.01", "13"], "|", "."),
        # DuckDB's thousands_fail.csv: a decimal point with comma groups
        (["1,234.56", "1,234,567.89"], ",", "."),
        (["0,125"], ",", ","),  # nobody groups 0,125
        (["1.234"], ";", ","),  # nothing tells: a semicolon file uses the comma
        (["1,234"], ",", "."),  # nothing tells: any other file the point
        (["1.234.567"], ",", ","),  # a repeated mark groups
    ],
)
def test_decide_decimal(cells: list[str], delimiter: str, mark: str) -> None:
    assert decide_decimal([NumberSample(i + 2, "x", c) for i, c in enumerate(cells)], delimiter) == mark


def test_a_file_that_writes_decimals_both_ways_is_refused_with_both_lines() -> None:
    # DuckDB's data/csv/decimal_separators/mixed_format_fail.csv: "foo\n12,5\n145,00\n5.25"
    with pytest.raises(MixedDecimals) as err:
        decide_decimal([NumberSample(2, "foo", "12,5"), NumberSample(3, "foo", "145,00"),
                        NumberSample(4, "foo", "5.25")], ",")
    assert "line 2" in str(err.value) and "line 4" in str(err.value)


@pytest.mark.parametrize("locale", ["de_DE", "fr_FR", "ru_RU", "es_ES", "it_IT", "pt_BR", "nl_NL", "pl_PL", "sv_SE",
                                    "de_CH", "en_US"])
def test_exports_formatted_the_way_each_locale_writes_numbers(locale: str) -> None:
    """CLDR's own formats (through babel), as a spreadsheet in that locale exports them: no-break and
    narrow no-break group spaces (fr, ru), apostrophes (de_CH), currency before or after."""
    sep = ";" if format_decimal(1.5, locale=locale) == "1,5" else ","
    quote = '"' if sep == "," else ""
    text = (f"Name{sep}Sales{sep}CVR{sep}Msg/hr{sep}Fans\n"
            f"Ana Ruiz{sep}{quote}{format_currency(1234.5, 'EUR', locale=locale)}{quote}{sep}"
            f"{format_percent(0.125, format='#,##0.0%', locale=locale)}{sep}{format_decimal(47.5, locale=locale)}{sep}"
            f"{quote}{format_decimal(1200, locale=locale)}{quote}\n"
            f"Bea Costa{sep}{quote}{format_currency(12345.25, 'EUR', locale=locale)}{quote}{sep}"
            f"{format_percent(0.08, locale=locale)}{sep}{format_decimal(30, locale=locale)}{sep}90\n")
    ana, bea = parse_inflow_csv(text.encode()).rows
    assert ana.sales == Decimal("1234.50") and bea.sales == Decimal("12345.25")
    assert ana.cvr == pytest.approx(0.125) and bea.cvr == pytest.approx(0.08)
    assert ana.msgs_per_hr == pytest.approx(47.5) and ana.fans_chatted == 1200


def test_rate_columns_are_read_in_one_scale_and_impossible_values_are_refused() -> None:
    percent_column = parse_inflow_csv("Name;CVR\nAna;12,5\nBea;0,5\nCy;8\n")
    assert [r.cvr for r in percent_column.rows] == pytest.approx([0.125, 0.005, 0.08])  # 0,5 here is 0.5 %
    with pytest.raises(CsvError) as err:
        parse_inflow_csv("Name;Sales;CVR\nAna;10;0,08\nBea;10;0,11\nCy;10;1,25\n")
    assert "line 4, column C “CVR”: “1,25” is over 100 %" in str(err.value)
    assert "fractions like 0,08" in str(err.value) and "saved nothing" in str(err.value)
    with pytest.raises(CsvError) as err:
        parse_inflow_csv("Name,Sales,Unlock rate,Fans chatted,Hours\nAna,10,125%,-3,30\n")
    message = str(err.value)
    assert "line 2, column C “Unlock rate”: “125%” is over 100 %" in message
    assert "line 2, column D “Fans chatted”: “-3” is negative" in message
    assert "line 2, column E “Hours”: “30” is more than 24 hours in one day" in message


def test_an_unbalanced_quote_is_named_by_the_line_it_opens_on() -> None:
    text = ("Name,Sales,CVR,Fans\nAna Ruiz,10,5%,40\n\"Bea Costa,20,6%,50\nCarlos Mendes,30,7%,60\n"
            "Dara Okafor\",40,8%,70\nElif Yilmaz,50,9%,80\n")
    with pytest.raises(CsvError) as err:
        parse_inflow_csv(text)
    assert "line 3: a quote (\") opened on line 3 is not closed until line 5" in str(err.value)
    with pytest.raises(CsvError, match=r"line 3: a quote .* is never closed"):
        parse_inflow_csv("Name,Sales,CVR\nAna Ruiz,10,5%\n\"Bea Costa,20,6%\n")
    fine = parse_inflow_csv('Name,Sales,CVR\n"Ruiz,\nAna",10,5%\nBea Costa,20,6%\n')  # a real line break in a cell
    assert [r.line for r in fine.rows] == [2, 4]


def test_the_same_cell_is_read_by_the_convention_of_the_whole_file() -> None:
    """`1.234` alone can't tell; the file's other numbers decide, for every cell alike."""
    points = parse_inflow_csv("Name;Sales;CVR\nAna Ruiz;1.234;0.125\nBea Costa;2.5;0.08\n")
    commas = parse_inflow_csv("Name;Sales;CVR\nAna Ruiz;1.234;0,125\nBea Costa;2,5;0,08\n")
    assert (points.decimal, points.rows[0].sales, points.rows[1].sales) == (".", Decimal("1.23"), Decimal("2.50"))
    assert (commas.decimal, commas.rows[0].sales, commas.rows[1].sales) == (",", Decimal("1234.00"), Decimal("2.50"))
    assert parse_inflow_csv("Name;Sales\nAna Ruiz;1.234\n").rows[0].sales == Decimal("1234.00")  # ; → comma
