"""Reading big, messy CSV exports: column aliases, value parsers, a progress bar, a report.

Headers are matched after normalising (lower case, non-alphanumerics to `_`), so `Customer ID`,
`customer_id` and `CustomerID` all work; each field lists the names common POS exports use.
A bad row is skipped with its line number and reason, never fatal; a file without a required
column is refused before anything is written.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

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


Rows = Iterator[tuple[int, list[str]]]


def read_rows(path: Path, *, progress: bool | None = None, desc: str = "") -> tuple[list[str], Rows]:
    """The header and an iterator of (line number, cells); a progress bar on stderr for big files."""
    if not path.exists():
        raise FileRefused(f"{path}: no such file")
    f = _open_text(path)
    sample = f.read(64 * 1024)
    f.seek(0)
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(f, dialect)
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        raise FileRefused(f"{path.name} is empty") from None
    if not any(h.strip() for h in header):
        f.close()
        raise FileRefused(f"{path.name}: the first line must be a header")
    total = count_lines(path) if progress is not False else 0
    bar = tqdm(total=max(total - 1, 0), desc=desc or path.name, unit=" rows", unit_scale=True, mininterval=0.5,
               disable=None if progress is None else not progress, leave=False)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            n = 0
            for cells in reader:
                n += 1
                if n % 1000 == 0:
                    bar.update(1000)
                if not any(c.strip() for c in cells):
                    continue
                yield reader.line_num, cells
        finally:
            bar.close()
            f.close()

    return header, rows()


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


__all__ = ["Columns", "FileRefused", "ImportReport", "RowError", "boolean", "day", "integer", "money",
           "optional_money", "read_rows", "text_list", "when"]
