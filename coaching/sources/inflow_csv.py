"""Read the daily Inflow export in any of the shapes real exports take.

Exports come from different people and spreadsheet tools, so this reader is lenient about form
(delimiter, BOM, encoding, header wording, `12.5%` vs `0.125`, `$1,234.50`, `1m 30s`) and strict
about content: a value it cannot read rejects the whole file with a plain message, so a half-read
day is never stored.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from coaching.chatter_metrics import CsvRow

MAX_BYTES = 5 * 1024 * 1024
MAX_ERRORS_SHOWN = 3
EMPTY = frozenset({"", "-", "--", "n/a", "na", "none", "null", "nan", "#n/a", "—"})


class CsvError(ValueError):
    """A file we cannot use, explained in words a team lead understands."""


# Header wording seen in exports, after `normalize_header`. Keys are CsvRow fields.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "chatter", "chatter name", "employee", "employee name", "member", "user", "full name", "agent"),
    "day": ("date", "day", "report date"),
    "sales": ("sales", "total sales", "revenue", "total revenue", "earnings", "net sales", "gross sales", "sales usd"),
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
LABELS = {"sales": "Sales", "cvr": "CVR", "unlock_rate": "Unlock rate", "golden_ratio": "Golden ratio",
          "msgs_per_hr": "Msg/hr", "reply_time_s": "Reply time", "fans_chatted": "Fans chatted",
          "ppvs_sent": "PPVs sent", "ppvs_unlocked": "PPVs unlocked", "hours": "Hours", "day": "Date"}


@dataclass(slots=True)
class ParsedCsv:
    rows: list[CsvRow]
    columns: dict[str, str]
    """CsvRow field → the header it came from."""
    delimiter: str
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


# -- values ----------------------------------------------------------------------------------


def _clean(raw: str) -> str | None:
    value = raw.strip().replace("\u00a0", " ")
    return None if value.lower() in EMPTY else value


def parse_number(raw: str) -> Decimal:
    """`"1,234.50"`, `"1.234,50"`, `"1 234"`, `"(12.00)"` → Decimal."""
    text = raw.strip().replace(" ", "").replace("\u202f", "")
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()")
    text = text.replace("$", "").replace("€", "").replace("£", "").replace("USD", "").replace("usd", "")
    if "," in text and "." in text:
        text = text.replace(".", "").replace(",", ".") if text.rfind(",") > text.rfind(".") else text.replace(",", "")
    elif "," in text:
        text = text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text) else text.replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(raw) from None
    if not value.is_finite():
        raise ValueError(raw)
    return -value if negative else value


def parse_money(raw: str) -> Decimal:
    return parse_number(raw).quantize(Decimal("0.01"))


def parse_percent(raw: str) -> float:
    """`"12.5%"` and `"0.125"` → 0.125; a bare number above 1 is read as a percentage (`"12.5"`)."""
    text = raw.strip()
    if text.endswith("%"):
        return float(parse_number(text[:-1])) / 100
    value = float(parse_number(text))
    return value / 100 if value > 1 else value


_DURATION_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)\b")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def parse_duration_seconds(raw: str, bare_unit: str = "s") -> float:
    """`"1m 30s"`, `"90"`, `"90s"`, `"1:30"`, `"00:01:30"`, `"1.5 min"` → seconds."""
    text = raw.strip().lower()
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}(\.\d+)?", text):
        parts = [float(p) for p in text.split(":")]
        if len(parts) == 2:
            return parts[0] * 60 + parts[1]
        return parts[0] * 3600 + parts[1] * 60 + parts[2]
    if re.fullmatch(r"\d+(?:[.,]\d+)?", text):
        return float(text.replace(",", ".")) * _UNIT_SECONDS[bare_unit]
    matches = list(_DURATION_RE.finditer(text))
    leftover = _DURATION_RE.sub("", text).strip()
    if not matches or leftover:
        raise ValueError(raw)
    return sum(float(m.group(1).replace(",", ".")) * _UNIT_SECONDS[m.group(2)[0]] for m in matches)


def parse_hours(raw: str) -> float:
    """`"7.5"`, `"7:30"`, `"7:30:00"`, `"7h 30m"` → hours."""
    text = raw.strip().lower()
    if re.fullmatch(r"\d+(?:[.,]\d+)?", text):
        return float(text.replace(",", "."))
    if re.fullmatch(r"\d+:\d{1,2}(:\d{1,2})?", text):
        return parse_duration_seconds(text if text.count(":") == 2 else text + ":00") / 3600
    return parse_duration_seconds(text) / 3600


def parse_int(raw: str) -> int:
    value = parse_number(raw)
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


def _parser(key: str, header: str) -> Callable[[str], Any]:
    hint = _unit_hint(header) or ""
    if key == "sales":
        return parse_money
    if key in {"cvr", "unlock_rate", "golden_ratio"}:
        return parse_percent
    if key == "reply_time_s":
        unit = "m" if hint in {"min", "mins", "minutes", "m"} else "s"
        return lambda raw: parse_duration_seconds(raw, unit)
    if key in {"fans_chatted", "ppvs_sent", "ppvs_unlocked"}:
        return parse_int
    if key == "msgs_per_hr":
        return lambda raw: float(parse_number(raw))
    if key == "hours":
        return parse_hours
    if key == "day":
        return parse_day
    return lambda raw: raw.strip()


# -- the file --------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise CsvError("That file isn't a CSV (it looks like a spreadsheet or an image). "
                       "Export it as CSV and send it again.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        first = text.splitlines()[0] if text.strip() else ""
        counts = {d: first.count(d) for d in (",", ";", "\t")}
        return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def parse_inflow_csv(data: bytes | str) -> ParsedCsv:
    """Parse an export into rows, or raise CsvError saying in plain words what is wrong."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise CsvError("That file is too big for a daily export (over 5 MB). Check it's the right file.")
        text = decode(data)
    else:
        text = data.lstrip("\ufeff")
    if not text.strip():
        raise CsvError("That file is empty.")
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        lines = list(reader)
    except csv.Error as exc:
        raise CsvError(f"I couldn't read that file as a CSV ({exc}).") from None
    header_at = next((i for i, r in enumerate(lines[:10]) if any(HEADER_LOOKUP.get(normalize_header(c)) == "name"
                                                                     for c in r)), None)
    if header_at is None:
        raise CsvError("I couldn't find a column with the chatters' names (like “Name” or “Chatter”). "
                       "Is this the Inflow export?")
    header = lines[header_at]
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
        raise CsvError("That file has names but none of the numbers I look for (Sales, CVR, Unlock rate, "
                       "Golden ratio, Msg/hr, Reply time, Fans chatted).")
    parsers = {k: _parser(k, sources[k]) for k in columns}
    rows: list[CsvRow] = []
    errors: list[str] = []
    skipped = 0
    for n, cells in enumerate(lines[header_at + 1 :], start=header_at + 2):
        if not any(c.strip() for c in cells):
            skipped += 1
            continue
        name = cells[columns["name"]].strip() if columns["name"] < len(cells) else ""
        if not name or name.lower() in {"total", "totals", "grand total", "sum", "average"}:
            skipped += 1
            continue
        row = CsvRow(name=" ".join(name.split()), line=n)
        for key, idx in columns.items():
            if key == "name" or idx >= len(cells):
                continue
            raw = _clean(cells[idx])
            if raw is None:
                continue
            try:
                setattr(row, key, parsers[key](raw))
            except (ValueError, ArithmeticError):
                errors.append(f"line {n}: {LABELS.get(key, key)} “{raw[:30]}” for {row.name[:40]}")
        rows.append(row)
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise CsvError("I couldn't read some values, so I saved nothing: "
                       + "; ".join(errors[:MAX_ERRORS_SHOWN]) + more + ". Fix them and send the file again.")
    if not rows:
        raise CsvError("That file has a header but no chatters in it.")
    return ParsedCsv(rows, {k: sources[k] for k in columns}, delimiter, skipped, unknown)
