"""Reading big, messy CSV exports: column aliases, value parsers, a progress bar, a report.

Headers are matched after normalising (lower case, non-alphanumerics to `_`), so `Customer ID`,
`customer_id` and `CustomerID` all work; each field lists the names common POS exports use.
A bad row is skipped with its line number and reason, never fatal; a file without a required
column is refused before anything is written.

Two faults of hand-edited exports are caught here for every importer:

* **An unbalanced quote.** A `"` that opens a cell and is closed lines later makes the csv module
  read the rows in between as the text of one cell ("three rows vanish into one customer's
  name"). A record that spans lines and holds, after a line break, a piece with as many
  delimiters as a whole row (`unbalanced_quote`), or a quote still open at the end of the file, is
  reported with the line the quote opens on; its rows are never stored as one.
* **The decimal mark.** `decide_decimal` reads a file's numbers together and picks one convention
  for the whole file (see its docstring for the rule); `parse_decimal` then reads each cell with it
  through `babel.numbers` in strict mode, so a misplaced group separator is an error, not a guess.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from bot.i18n import Msg
from channels.markup import esc, to_plain

csv.field_size_limit(10 * 1024 * 1024)


class RowError(ValueError):
    """Why one row was skipped (its message goes in the report)."""


class FileRefused(ValueError):
    """The file cannot be imported at all (missing columns, not a CSV)."""


def norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _squash(name: str) -> str:
    return norm(name).replace("_", "")


@dataclass
class Columns:
    """field → column index, resolved from a header row."""

    index: dict[str, int]
    header: list[str]

    @classmethod
    def resolve(cls, header: list[str], aliases: dict[str, list[str]], required: list[str | tuple[str, ...]],
                overrides: dict[str, str] | None = None) -> Columns:
        by_name = {norm(h): i for i, h in enumerate(header)}
        squashed = {_squash(h): i for i, h in enumerate(header)}
        index: dict[str, int] = {}
        for fld, column in (overrides or {}).items():
            if fld not in aliases:
                raise FileRefused(f"--map: unknown field {fld!r} (fields: {', '.join(aliases)})")
            if norm(column) not in by_name:
                raise FileRefused(f"--map {fld}={column}: the file has no column {column!r}")
            index[fld] = by_name[norm(column)]
        for fld, names in aliases.items():
            if fld in index:
                continue
            for name in [fld, *names]:
                i = by_name.get(norm(name), squashed.get(_squash(name)))
                if i is not None:
                    index[fld] = i
                    break
        missing = []
        for need in required:
            options = (need,) if isinstance(need, str) else need
            if not any(o in index for o in options):
                missing.append(" or ".join(options))
        if missing:
            raise FileRefused(
                f"missing column(s): {', '.join(missing)}; the header is: {', '.join(header)} "
                "(use --map FIELD=COLUMN)"
            )
        return cls(index, header)

    def get(self, row: list[str], fld: str) -> str:
        if isinstance(row, BrokenRecord):
            raise RowError(row.reason)
        i = self.index.get(fld)
        if i is None or i >= len(row):
            return ""
        return row[i].strip()


@dataclass
class ImportReport:
    kind: str
    path: str
    read: int = 0
    written: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped.append((line, reason))

    def summary(self, limit: int = 20) -> str:
        lines = [f"{self.kind}: {self.read} rows read, {self.written} imported, {len(self.skipped)} skipped"]
        self.skipped.sort()
        for line, reason in self.skipped[:limit]:
            lines.append(f"  line {line}: {reason}")
        if len(self.skipped) > limit:
            lines.append(f"  … and {len(self.skipped) - limit} more (use --report FILE for all)")
        lines.extend(self.notes)
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["line", "reason"])
            w.writerows(sorted(self.skipped))


def count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def _open_text(path: Path) -> TextIO:
    raw = path.read_bytes()[:4096]
    if b"\x00" in raw:
        raise FileRefused(f"{path.name} is not a text CSV file")
    try:
        raw.decode("utf-8")
        encoding = "utf-8-sig"
    except UnicodeDecodeError as exc:
        # cp1252 unless it is only a multi-byte character cut at the sample's end
        encoding = "cp1252" if exc.start < len(raw) - 4 else "utf-8-sig"
    return path.open("r", encoding=encoding, errors="replace", newline="")


@dataclass(slots=True)
class Record:
    """One CSV record and the physical lines it spans (a quoted cell may hold line breaks)."""

    start: int
    end: int
    cells: list[str]
    raw: str
    """The text the record was read from."""
    last: bool = False


class BrokenRecord(list[str]):
    """The cells of a record that cannot be trusted (an unbalanced quote); `reason` says why.

    Importers skip it with that reason; `Columns.get` raises `RowError(reason)` for it, so an
    importer that forgets to check cannot store it either.
    """

    reason: str

    def __init__(self, cells: list[str], reason: str) -> None:
        super().__init__(cells)
        self.reason = reason


class _Lines:
    """Feeds the csv reader line by line and keeps the text of the record being read."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._it = iter(lines)
        self.buffer: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._it)
        self.buffer.append(line)
        return line


def records(lines: Iterable[str], dialect: Any = csv.excel, **fmt: Any) -> Iterator[Record]:
    """Records with their first and last physical line numbers; the final one is marked `last`."""
    source = _Lines(lines)
    reader = csv.reader(source, dialect, **fmt)
    pending: Record | None = None
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        record = Record(start, reader.line_num, cells, "".join(source.buffer))
        source.buffer.clear()
        if pending is not None:
            yield pending
        pending = record
    if pending is not None:
        pending.last = True
        yield pending


def unbalanced_quote(record: Record, delimiter: str, width: int, quotechar: str = '"') -> Msg | None:
    """Why this record looks like rows swallowed by an unbalanced quote, or None.

    Two signs, both specific enough not to flag a real multi-line cell (an address, a note):
    a record spanning lines whose cell holds, after a line break, a piece with at least as many
    delimiters as a whole row has (`width - 1`, for files of 3+ columns); or a quote still open
    at the end of the file.
    """
    if record.end > record.start and width >= 3:
        for cell in record.cells:
            pieces = cell.replace("\r", "").split("\n")[1:]
            if any(p.count(delimiter) >= width - 1 for p in pieces):
                return Msg("a quote ({q}) opened on line {start} is not closed until line {end}, so lines "
                           "{start}–{end} were read as one row; fix the quote (a quote inside a cell is written "
                           "{q}{q}) and import again", q=quotechar, start=record.start, end=record.end)
    if record.last and quotechar in record.raw:
        try:
            list(csv.reader(io.StringIO(record.raw, newline=""), delimiter=delimiter, quotechar=quotechar,
                            strict=True))
        except csv.Error as exc:
            if "end of data" in str(exc):
                return Msg("a quote ({q}) opened on line {start} is never closed, so everything after it was "
                           "read as one cell; fix the quote and import again", q=quotechar, start=record.start)
    return None


Rows = Iterator[tuple[int, list[str]]]


def read_rows(path: Path, *, progress: bool | None = None, desc: str = "") -> tuple[list[str], Rows]:
    """The header and an iterator of (first line of the record, cells); a progress bar for big files.

    A record broken by an unbalanced quote comes as a `BrokenRecord` whose `reason` names the lines.
    """
    if not path.exists():
        raise FileRefused(f"{path}: no such file")
    f = _open_text(path)
    sample = f.read(64 * 1024)
    f.seek(0)
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = records(f, dialect)
    try:
        header = next(reader).cells
    except StopIteration:
        f.close()
        raise FileRefused(f"{path.name} is empty") from None
    if not any(h.strip() for h in header):
        f.close()
        raise FileRefused(f"{path.name}: the first line must be a header")
    total = count_lines(path) if progress is not False else 0
    from tqdm import tqdm  # only when a progress bar is shown

    bar = tqdm(total=max(total - 1, 0), desc=desc or path.name, unit=" rows", unit_scale=True, mininterval=0.5,
               disable=None if progress is None else not progress, leave=False)
    width = len(header)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            n = 0
            for record in reader:
                n += 1
                if n % 1000 == 0:
                    bar.update(1000)
                if not any(c.strip() for c in record.cells):
                    continue
                problem = unbalanced_quote(record, dialect.delimiter, width, dialect.quotechar or '"')
                yield record.start, (BrokenRecord(record.cells, str(problem)) if problem else record.cells)
        finally:
            bar.close()
            f.close()

    return header, rows()


# -- the decimal mark --------------------------------------------------------------------------

_SYMBOLS = re.compile(r"[$€£₽¥₹₺₴₩%]")
_EDGES = re.compile(r"^[^\d.,+\-(]+|[^\d)]+$")
"""Currency codes and words before or after the number (`EUR 12`, `12 kr`, `12 руб.`)."""
_INSIDE = re.compile(r"[\s\u00a0\u202f\u2009'’]")
"""Spaces (plain, no-break, narrow no-break, thin) and apostrophes: group marks only."""
_NUMBER_SHAPE = re.compile(r"-?(\d[\d.,]*|[.,]\d+)")
_BABEL_LOCALES: dict[str, Any] = {}


def _babel_locale(mark: str) -> Any:
    """CLDR's en_US (decimal point) or de_DE (decimal comma), loaded the first time a grouped number is read."""
    if not _BABEL_LOCALES:
        from babel import Locale

        _BABEL_LOCALES.update({".": Locale.parse("en_US"), ",": Locale.parse("de_DE")})
    return _BABEL_LOCALES[mark]
"""Babel locales whose group and decimal marks are exactly `,`/`.` and `.`/`,` (parsed once)."""


def number_token(text: str) -> str | None:
    """The bare number in a cell (currency, %, spaces and apostrophe groups removed), or None."""
    t = _SYMBOLS.sub("", text.strip().replace("\u2212", "-"))
    t = _INSIDE.sub("", _EDGES.sub("", t.strip()))
    if t.startswith("(") and t.endswith(")"):
        t = t[1:-1]
    t = t.lstrip("+")
    return t if _NUMBER_SHAPE.fullmatch(t) else None


def decimal_mark_of(token: str) -> str | None:
    """The decimal mark a bare number shows by itself (`"0,125"` → `,`), or None if it can't tell.

    `1,234` and `1.234` are the ambiguous shapes: one mark followed by exactly three digits, with a
    non-zero whole part. Everything else tells: both marks (the last one is the decimal), a mark
    repeated (it groups, so the other is the decimal), a mark followed by other than three digits,
    or a whole part of 0 (nobody groups `0,125`).
    """
    t = token.lstrip("-")
    commas, points = t.count(","), t.count(".")
    if commas and points:
        return "," if t.rfind(",") > t.rfind(".") else "."
    if not commas and not points:
        return None
    mark, count = (",", commas) if commas else (".", points)
    other = "." if mark == "," else ","
    if count > 1:
        return other
    whole, _, fraction = t.partition(mark)
    if len(fraction) != 3 or whole in {"", "0"}:
        return mark
    return None


@dataclass(frozen=True, slots=True)
class NumberSample:
    """A numeric cell as read, for deciding a file's decimal mark and for error messages."""

    line: int
    column: str
    raw: str


class MixedDecimals(ValueError):
    """A file that writes its decimals both ways: no reading of it is safe."""

    def __init__(self, comma: NumberSample, point: NumberSample) -> None:
        self.comma, self.point = comma, point
        self.message = Msg("the file mixes decimal commas (line {cl}, {cc} “{cr}”) and decimal points "
                           "(line {pl}, {pc} “{pr}”)", cl=comma.line, cc=esc(comma.column), cr=esc(comma.raw),
                           pl=point.line, pc=esc(point.column), pr=esc(point.raw))
        super().__init__(to_plain(str(self.message)))


def decide_decimal(samples: Iterable[NumberSample], delimiter: str) -> str:
    """The decimal mark of a whole file, `.` or `,`, from all of its numbers.

    Rule: every number that shows its mark by itself (`decimal_mark_of`) votes; votes for both
    marks mean the file is inconsistent (`MixedDecimals`, nothing is read). With no telling
    number at all (only shapes like `1,234`, `1.234` or `1234`), a semicolon-separated file uses
    the decimal comma (the convention of every locale whose list separator is `;`), any other
    file the decimal point.
    """
    first: dict[str, NumberSample] = {}
    for sample in samples:
        token = number_token(sample.raw)
        mark = decimal_mark_of(token) if token else None
        if mark is not None and mark not in first:
            first[mark] = sample
            if len(first) == 2:
                raise MixedDecimals(first[","], first["."])
    if first:
        return next(iter(first))
    return "," if delimiter == ";" else "."


def parse_decimal(text: str, mark: str) -> Decimal:
    """A cell read with the file's decimal mark: `"1.234,50 €"` with `,` → 1234.50; `(12.00)` → -12.

    Raises ValueError for text that isn't a number in that convention (a group mark in the wrong
    place, letters, the other decimal mark).
    """
    stripped = text.strip()
    negative = stripped.startswith("(") and stripped.endswith(")")
    token = number_token(stripped)
    if token is None:
        raise ValueError(text)
    group = "," if mark == "." else "."
    try:
        if group in token:  # grouped: babel checks the groups are where the convention puts them
            from babel.numbers import parse_decimal

            value = parse_decimal(token, locale=_babel_locale(mark), strict=True)
        elif token.count(mark) > 1:
            raise ValueError(text)
        else:
            value = Decimal(token.replace(mark, "."))
    except (ValueError, InvalidOperation):  # babel's NumberFormatError is a ValueError
        raise ValueError(text) from None
    if not value.is_finite():
        raise ValueError(text)
    return -value if negative else value


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA: how a spreadsheet names the column."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# -- values --------------------------------------------------------------------------------------

_MONEY_JUNK = re.compile(r"[\s$,€£]")


def money(text: str, what: str = "amount") -> Decimal:
    t = _MONEY_JUNK.sub("", text)
    negative = t.startswith("(") and t.endswith(")")
    t = t.strip("()")
    if not t:
        raise RowError(f"{what} is empty")
    try:
        value = Decimal(t)
    except InvalidOperation:
        raise RowError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or abs(value) >= Decimal("1e12"):
        raise RowError(f"{what} {text!r} is out of range")
    return (-value if negative else value).quantize(Decimal("0.01"))


def optional_money(text: str, what: str = "amount") -> Decimal | None:
    return money(text, what) if text.strip() else None


_TRUE = {"1", "y", "yes", "true", "t", "x", "member", "enrolled", "active", "on"}
_FALSE = {"0", "n", "no", "false", "f", "", "none", "inactive", "off", "-"}


def boolean(text: str, what: str = "flag") -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise RowError(f"{what} {text!r} is not yes/no")


_DT_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p",
               "%m/%d/%y %H:%M", "%m/%d/%y %I:%M %p", "%Y/%m/%d %H:%M:%S", "%d.%m.%Y %H:%M")
_D_FORMATS = ("%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%d.%m.%Y")


def when(text: str, tz: tzinfo, what: str = "date") -> datetime:
    """A timestamp; one without a zone is read in the store's zone."""
    t = text.strip()
    if not t:
        raise RowError(f"{what} is empty")
    value: datetime | None = None
    try:
        value = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        for fmt in (*_DT_FORMATS, *_D_FORMATS):
            try:
                value = datetime.strptime(t, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise RowError(f"{what} {text!r} is not a date/time")
    if value.year < 1990 or value.year > 2100:
        raise RowError(f"{what} {text!r} is out of range")
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def day(text: str, what: str = "date") -> date | None:
    t = text.strip()
    if not t:
        return None
    try:
        return date.fromisoformat(t[:10])
    except ValueError:
        pass
    for fmt in (*_D_FORMATS, *(f.split(" ")[0] for f in _DT_FORMATS)):
        try:
            return datetime.strptime(t.split(" ")[0], fmt).date()
        except ValueError:
            continue
    raise RowError(f"{what} {text!r} is not a date")


def integer(text: str, what: str = "number", default: int | None = None) -> int:
    t = text.strip().replace(",", "")
    if not t:
        if default is None:
            raise RowError(f"{what} is empty")
        return default
    try:
        value = Decimal(t)
    except InvalidOperation:
        raise RowError(f"{what} {text!r} is not a number") from None
    if value != value.to_integral_value() or abs(value) > 10**9:
        raise RowError(f"{what} {text!r} is not a whole number")
    return int(value)


def text_list(text: str) -> list[str]:
    return [p.strip().lower() for p in re.split(r"[;|,/]", text) if p.strip()]


__all__ = ["BrokenRecord", "Columns", "FileRefused", "ImportReport", "MixedDecimals", "NumberSample", "Record",
           "RowError", "boolean", "column_letter", "day", "decide_decimal", "decimal_mark_of", "integer", "money",
           "number_token", "optional_money", "parse_decimal", "read_rows", "records", "text_list",
           "unbalanced_quote", "when"]
