"""Read the daily Inflow export in any of the shapes real exports take.

Exports come from different people and spreadsheet tools, so this reader is lenient about form
(delimiter, BOM, encoding, header wording, `12.5%` vs `0.125`, `$1,234.50`, `1m 30s`) and strict
about content: a value it cannot read, or one that cannot be true (a rate over 100 %, a negative
count, more than 24 hours in a day), rejects the whole file with the line and column, so a
half-read or misread day is never stored.

Conventions are decided per file, never per cell:

* the decimal mark, from all of the file's numbers (`csv_rows.decide_decimal`): in a semicolon
  file `0,125` is 0.125 and `1.234,50` is 1234.50; a file that writes decimals both ways is refused;
* the scale of each rate column: bare numbers are fractions (`0.125`) unless most of the column's
  non-zero bare values are above 1, in which case the column is in percent (`12.5`); a cell with
  `%` is always a percentage. A value that would be over 100 % in the column's scale is refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.i18n import N_, Join, Msg, Plural
from channels.markup import esc
from coaching.chatter_metrics import CsvRow
from coaching.sources.csv_rows import (
    MixedDecimals,
    NumberSample,
    Record,
    column_letter,
    decide_decimal,
    decimal_mark_of,
    number_token,
    parse_decimal,
    records,
    unbalanced_quote,
)

MAX_BYTES = 5 * 1024 * 1024
MAX_ERRORS_SHOWN = 3
EMPTY = frozenset({"", "-", "--", "n/a", "na", "none", "null", "nan", "#n/a", "—"})


class CsvError(ValueError):
    """A file we cannot use, explained in words a team lead understands, in their language.

    `render(locale)` is the reason as neutral markup (values from the file escaped); `str()` is
    the English of it.
    """

    def __init__(self, message: Msg | str) -> None:
        self.message = message if isinstance(message, Msg) else Msg(message)
        super().__init__(message)

    def render(self, locale: str | None) -> str:
        return self.message.render(locale)

    def __str__(self) -> str:
        return self.message.render(None)


# Header wording seen in exports, after `normalize_header`. Keys are CsvRow fields.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "chatter", "chatter name", "employee", "employee name", "member", "user", "full name", "agent"),
    "day": ("date", "day", "report date", "datum", "fecha", "дата"),
    "sales": ("sales", "total sales", "revenue", "total revenue", "earnings", "net sales", "gross sales", "sales usd",
              "umsatz", "ventes", "ventas", "продажи", "выручка"),
    "cvr": ("cvr", "conversion rate", "conversion", "conv rate", "cr"),
    "unlock_rate": ("unlock rate", "unlock", "unlock %", "unlocks rate", "ppv unlock rate", "unlocked rate"),
    "golden_ratio": ("golden ratio", "golden", "gr"),
    "msgs_per_hr": ("msg/hr", "msgs/hr", "messages/hr", "messages/hour", "msg/hour", "msgs/hour", "message/hr"),
    "reply_time_s": ("reply time", "avg reply time", "average reply time", "response time", "avg response time",
                     "average response time", "reply speed"),
    "fans_chatted": ("fans chatted", "fans", "fans chatted with", "chatted fans", "fans talked to"),
    "ppvs_sent": ("ppvs sent", "ppv sent", "ppvs", "ppv", "paid messages sent"),
    "ppvs_unlocked": ("ppvs unlocked", "ppv unlocked", "unlocked ppvs", "unlocked ppv", "unlocks", "ppvs bought"),
    "hours": ("hours", "hours worked", "worked hours", "clocked hours", "time worked", "tracked hours"),
    "group": ("group", "team", "tl", "team lead", "tl team"),
}
HEADER_LOOKUP = {alias: key for key, aliases in HEADER_ALIASES.items() for alias in aliases}
METRIC_FIELDS = ("sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s", "fans_chatted",
                 "ppvs_sent", "ppvs_unlocked", "hours")


@dataclass(slots=True)
class ParsedCsv:
    rows: list[CsvRow]
    columns: dict[str, str]
    """CsvRow field → the header it came from."""
    delimiter: str
    decimal: str = "."
    """The file's decimal mark, as decided from all of its numbers."""
    skipped: int = 0
    """Blank and total lines left out."""
    unknown_headers: list[str] = field(default_factory=list)


def normalize_header(text: str) -> str:
    """`"Total Sales ($)"` → `"total sales"`, `"Msgs per Hour"` → `"msgs/hour"`."""
    t = text.strip().lstrip("\ufeff").lower()
    t = re.sub(r"\([^)]*\)|\[[^]]*\]", " ", t)
    t = re.sub(r"[_\-.#:]+", " ", t)
    t = t.replace("$", " usd ").replace("€", " ").replace("%", " % ")
    t = re.sub(r"\s+per\s+", "/", t)
    t = re.sub(r"\s*/\s*", "/", t)
    t = re.sub(r"\s+", " ", t).strip()
    if t.endswith(" usd"):
        t = t[: -len(" usd")]
    if t.endswith(" %") and t not in HEADER_LOOKUP:
        t = t[: -len(" %")]
    return t


def _unit_hint(header: str) -> str | None:
    m = re.search(r"\(([^)]*)\)", header.lower())
    return m.group(1).strip() if m else None


# -- what the uploader reads -------------------------------------------------------------------
# Every sentence a team lead can get back from this module, in one place (the message catalog
# takes them from here).

TOO_BIG = N_("That file is too big for a daily export (over 5 MB). Check it's the right file.")
NOT_CSV = N_("That file isn't a CSV (it looks like a spreadsheet or an image). Export it as CSV and send it again.")
EMPTY_FILE = N_("That file is empty.")
NOT_READABLE = N_("I couldn't read that file as a CSV ({error}).")
NO_NAMES = N_("I couldn't find a column with the chatters' names (like “Name” or “Chatter”). "
              "Is this the Inflow export?")
NO_NUMBERS = N_("That file has names but none of the numbers I look for (Sales, CVR, Unlock rate, "
                "Golden ratio, Msg/hr, Reply time, Fans chatted).")
NO_ROWS = N_("That file has a header but no chatters in it.")
MIXED = N_("{detail}; write them all one way")
AT = N_("line {line}, column {letter} “{header}”")
PROBLEM_AT = N_("{at}: {problem} ({name})")
NOT_A = {
    "amount": N_("“{raw}” isn't an amount"),
    "date": N_("“{raw}” isn't a date"),
    "duration": N_("“{raw}” isn't a duration"),
    "hours": N_("“{raw}” isn't a number of hours"),
    "number": N_("“{raw}” isn't a number"),
}
OVER_100 = N_("“{raw}” is over 100 %")
OVER_100_FRACTIONS = N_("“{raw}” is over 100 % (this column's other values are fractions like {example})")
NEGATIVE = N_("“{raw}” is negative")
OVER_A_DAY = N_("“{raw}” is more than 24 hours in one day")
AND_MORE = N_(" (and {n} more)")
QUOTE = N_("line {line}: {problem}")


def at(line: int, letter: str, header: str) -> Msg:
    """Where in the file: `line 4, column C “CVR”` (the header escaped)."""
    return Msg(AT, line=line, letter=letter, header=esc(header[:40]))


def problem_at(where: Msg, problem: Msg, name: str) -> Msg:
    return Msg(PROBLEM_AT, at=where, problem=problem, name=esc(name[:40]))


# -- values ----------------------------------------------------------------------------------


def _clean(raw: str) -> str | None:
    value = raw.strip().replace("\u00a0", " ")
    return None if value.lower() in EMPTY else value


def _own_mark(raw: str, default: str = ".") -> str:
    """The decimal mark one value shows by itself (for single values outside a file)."""
    token = number_token(raw)
    return (decimal_mark_of(token) if token else None) or default


def parse_number(raw: str, mark: str | None = None) -> Decimal:
    """`"1,234.50"`, `"1.234,50"`, `"1 234"`, `"(12.00)"` → Decimal, with the file's decimal `mark`.

    Without a mark (one value on its own) the value's own shape decides, defaulting to `.`.
    """
    return parse_decimal(raw, mark or _own_mark(raw))


def parse_money(raw: str, mark: str | None = None) -> Decimal:
    return parse_number(raw, mark).quantize(Decimal("0.01"))


def parse_percent(raw: str, mark: str | None = None, scale: str | None = None) -> float:
    """`"12.5%"` and `"0.125"` → 0.125; a bare number is read in the column's `scale`.

    `scale` is "percent" or "fraction"; without one (a value on its own) a bare number above 1
    is a percentage (`"12.5"`).
    """
    text = raw.strip()
    if text.endswith("%"):
        return float(parse_number(text[:-1], mark)) / 100
    value = float(parse_number(text, mark))
    if scale is None:
        scale = "percent" if value > 1 else "fraction"
    return value / 100 if scale == "percent" else value


_DURATION_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)\b")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_BARE = re.compile(r"\d+(?:[.,]\d+)*")


def parse_duration_seconds(raw: str, bare_unit: str = "s", mark: str | None = None) -> float:
    """`"1m 30s"`, `"90"`, `"90s"`, `"1:30"`, `"00:01:30"`, `"1.5 min"`, `"1,5"` → seconds."""
    text = raw.strip().lower()
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}(\.\d+)?", text):
        parts = [float(p) for p in text.split(":")]
        if len(parts) == 2:
            return parts[0] * 60 + parts[1]
        return parts[0] * 3600 + parts[1] * 60 + parts[2]
    if _BARE.fullmatch(text):
        return float(parse_number(text, mark)) * _UNIT_SECONDS[bare_unit]
    matches = list(_DURATION_RE.finditer(text))
    leftover = _DURATION_RE.sub("", text).strip()
    if not matches or leftover:
        raise ValueError(raw)
    return sum(float(m.group(1).replace(",", ".")) * _UNIT_SECONDS[m.group(2)[0]] for m in matches)


def parse_hours(raw: str, mark: str | None = None) -> float:
    """`"7.5"`, `"7,5"`, `"7:30"`, `"7:30:00"`, `"7h 30m"` → hours."""
    text = raw.strip().lower()
    if _BARE.fullmatch(text):
        return float(parse_number(text, mark))
    if re.fullmatch(r"\d+:\d{1,2}(:\d{1,2})?", text):
        return parse_duration_seconds(text if text.count(":") == 2 else text + ":00") / 3600
    return parse_duration_seconds(text, mark=mark) / 3600


def parse_int(raw: str, mark: str | None = None) -> int:
    value = parse_number(raw, mark)
    if value != value.to_integral_value():
        raise ValueError(raw)
    return int(value)


def parse_day(raw: str) -> date:
    text = raw.strip()[:10] if re.match(r"\d{4}-\d{2}-\d{2}[T ]", raw.strip()) else raw.strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%b %d, %Y", "%d %b %Y", "%B %d, %Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2,4})", text)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        y += 2000 if y < 100 else 0
        month, day = (b, a) if a > 12 else (a, b)  # US order unless impossible
        return date(y, month, day)
    raise ValueError(raw)


RATE_FIELDS = frozenset({"cvr", "unlock_rate", "golden_ratio"})
COUNT_FIELDS = frozenset({"fans_chatted", "ppvs_sent", "ppvs_unlocked"})
NUMERIC_FIELDS = frozenset({"sales", "msgs_per_hr", "reply_time_s", "hours"} | RATE_FIELDS | COUNT_FIELDS)
"""Columns whose numbers vote on the file's decimal mark (names, teams and dates don't)."""
MAX_HOURS = 24.0


class ValueProblem(ValueError):
    """A value that was read but cannot be true; its message is for the uploader."""

    def __init__(self, message: Msg) -> None:
        self.message = message
        super().__init__(str(message))


def rate_scale(raws: list[str], mark: str) -> str:
    """"percent" when most non-zero bare values of a rate column are above 1, else "fraction"."""
    above = at_most = 0
    for raw in raws:
        if raw.strip().endswith("%"):
            continue
        try:
            value = parse_number(raw, mark)
        except ValueError:
            continue
        if value > 1:
            above += 1
        elif value > 0:
            at_most += 1
    return "percent" if above > at_most else "fraction"


def _checked(key: str, raw: str, value: Any, scale: str | None, example: str | None) -> Any:
    """The value, or ValueProblem when it cannot be a true reading of a chatter's day."""
    if key in RATE_FIELDS:
        if value < 0:
            raise ValueProblem(Msg(NEGATIVE, raw=esc(raw)))
        if value > 1:
            fractions = scale == "fraction" and not raw.strip().endswith("%") and example
            raise ValueProblem(Msg(OVER_100_FRACTIONS if fractions else OVER_100, raw=esc(raw),
                                   example=esc(example or "")))
    elif key in COUNT_FIELDS or key in {"msgs_per_hr", "reply_time_s", "hours"}:
        if value < 0:
            raise ValueProblem(Msg(NEGATIVE, raw=esc(raw)))
        if key == "hours" and value > MAX_HOURS:
            raise ValueProblem(Msg(OVER_A_DAY, raw=esc(raw)))
    return value


def _parser(key: str, header: str, mark: str, scale: str | None) -> Callable[[str], Any]:
    hint = _unit_hint(header) or ""
    if key == "sales":
        return lambda raw: parse_money(raw, mark)
    if key in RATE_FIELDS:
        return lambda raw: parse_percent(raw, mark, scale)
    if key == "reply_time_s":
        unit = "m" if hint in {"min", "mins", "minutes", "m"} else "s"
        return lambda raw: parse_duration_seconds(raw, unit, mark)
    if key in COUNT_FIELDS:
        return lambda raw: parse_int(raw, mark)
    if key == "msgs_per_hr":
        return lambda raw: float(parse_number(raw, mark))
    if key == "hours":
        return lambda raw: parse_hours(raw, mark)
    if key == "day":
        return parse_day
    return lambda raw: raw.strip()


_KIND = {"sales": "amount", "day": "date", "reply_time_s": "duration", "hours": "hours"}


# -- the file --------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise CsvError(NOT_CSV)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def sniff_delimiter(text: str) -> str:
    """The csv Sniffer's answer, checked: the delimiter that gives the header's width to most rows.

    The Sniffer can be swayed by decimal commas in a short semicolon file; a candidate that splits
    every one of the first lines into the same number of cells as the header wins over it.
    """
    lines = text.splitlines()[:20]
    sample = "\n".join(lines)
    try:
        sniffed: str | None = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        sniffed = None

    def consistency(d: str) -> float:
        rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=d) if any(c.strip() for c in r)]
        if len(rows) < 2 or len(rows[0]) < 2:
            return 0.0
        return sum(len(r) == len(rows[0]) for r in rows[1:]) / (len(rows) - 1)

    scores = {d: consistency(d) for d in (",", ";", "\t")}
    best = max(scores, key=lambda d: (scores[d], d == sniffed))
    if sniffed is not None and scores[sniffed] >= scores[best]:
        return sniffed
    if scores[best] > 0:
        return best
    first = lines[0] if lines else ""
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def read_records(text: str) -> tuple[str, list[Record]]:
    """The delimiter and the records of a decoded export, or CsvError in plain words."""
    delimiter = sniff_delimiter(text)
    try:
        return delimiter, list(records(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise CsvError(Msg(NOT_READABLE, error=esc(exc))) from None


def refuse(problems: list[Msg]) -> CsvError:
    """Nothing of the file is stored: the first problems, and how many more."""
    more = Msg(AND_MORE, n=len(problems) - MAX_ERRORS_SHOWN) if len(problems) > MAX_ERRORS_SHOWN else ""
    return CsvError(Plural("I saved nothing from this file: {problems}{more}. Fix it and send the file again.",
                           "I saved nothing from this file: {problems}{more}. Fix them and send the file again.",
                           len(problems), problems=Join("; ", problems[:MAX_ERRORS_SHOWN]), more=more))


def mixed(exc: MixedDecimals) -> CsvError:
    return refuse([Msg(MIXED, detail=exc.message)])


def check_quotes(body: list[Record], delimiter: str, width: int) -> None:
    """Refuse the file if a quote left open swallowed rows (see `csv_rows.unbalanced_quote`)."""
    problems = [Msg(QUOTE, line=r.start, problem=p) for r in body
                if (p := unbalanced_quote(r, delimiter, width)) is not None]
    if problems:
        raise refuse(problems)


def parse_inflow_csv(data: bytes | str) -> ParsedCsv:
    """Parse an export into rows, or raise CsvError saying in plain words what is wrong."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise CsvError(TOO_BIG)
        text = decode(data)
    else:
        text = data.lstrip("\ufeff")
    if not text.strip():
        raise CsvError(EMPTY_FILE)
    delimiter, recs = read_records(text)
    header_at = next((i for i, r in enumerate(recs[:10]) if any(HEADER_LOOKUP.get(normalize_header(c)) == "name"
                                                                  for c in r.cells)), None)
    if header_at is None:
        raise CsvError(NO_NAMES)
    header = recs[header_at].cells
    columns: dict[str, int] = {}
    sources: dict[str, str] = {}
    unknown: list[str] = []
    for i, cell in enumerate(header):
        key = HEADER_LOOKUP.get(normalize_header(cell))
        if key is None:
            if cell.strip():
                unknown.append(cell.strip())
            continue
        if key not in columns:
            columns[key] = i
            sources[key] = cell.strip()
    if not any(k in columns for k in METRIC_FIELDS):
        raise CsvError(NO_NUMBERS)
    body = recs[header_at + 1 :]
    check_quotes(body, delimiter, len(header))

    # Rows first as raw text, so the decimal mark and the rate scales are decided from the whole file.
    pending: list[tuple[CsvRow, dict[str, str]]] = []
    skipped = 0
    for rec in body:
        cells = rec.cells
        if not any(c.strip() for c in cells):
            skipped += 1
            continue
        name = cells[columns["name"]].strip() if columns["name"] < len(cells) else ""
        if not name or name.lower() in {"total", "totals", "grand total", "sum", "average"}:
            skipped += 1
            continue
        raws = {k: raw for k, idx in columns.items()
                if k != "name" and idx < len(cells) and (raw := _clean(cells[idx])) is not None}
        pending.append((CsvRow(name=" ".join(name.split()), line=rec.start), raws))
    if not pending:
        raise CsvError(NO_ROWS)
    samples = (NumberSample(row.line, sources[k], raw) for row, raws in pending for k, raw in raws.items()
               if k in NUMERIC_FIELDS)
    try:
        mark = decide_decimal(samples, delimiter)
    except MixedDecimals as exc:
        raise mixed(exc) from None
    scales = {k: rate_scale([raws[k] for _, raws in pending if k in raws], mark) for k in RATE_FIELDS & set(columns)}
    examples = {k: next((raws[k] for _, raws in pending if k in raws and not raws[k].endswith("%")
                         and _fraction_like(raws[k], mark)), None) for k in scales}
    parsers = {k: _parser(k, sources[k], mark, scales.get(k)) for k in columns}
    rows: list[CsvRow] = []
    errors: list[Msg] = []
    for row, raws in pending:
        for key, raw in raws.items():
            try:
                value = _checked(key, raw, parsers[key](raw), scales.get(key), examples.get(key))
            except (ValueError, ArithmeticError) as exc:
                what = exc.message if isinstance(exc, ValueProblem) else Msg(
                    NOT_A[_KIND.get(key, "number")], raw=esc(raw[:30]))
                errors.append(problem_at(at(row.line, column_letter(columns[key]), sources[key]), what, row.name))
                continue
            setattr(row, key, value)
        rows.append(row)
    if errors:
        raise refuse(errors)
    return ParsedCsv(rows, {k: sources[k] for k in columns}, delimiter, mark, skipped, unknown)


def _fraction_like(raw: str, mark: str) -> bool:
    try:
        return 0 < parse_number(raw, mark) <= 1
    except ValueError:
        return False
