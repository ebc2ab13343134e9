"""`python main.py import budtenders FILE.csv`: the outside budtender network (name, phone, dispensary, city).

The predecessor's X-Viewer held 524 budtenders of 112 dispensaries. Rows are read with the
project's CSV reader (column aliases, unbalanced quotes caught, a progress bar); a bad row is
skipped with its line and reason; the good rows are written in one transaction, each with its
person, SMS address and dispensary — never a person without their budtender record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bot.phones import normalize_phone
from coaching.sources.csv_rows import Columns, ImportReport, RowError, read_rows
from storage.budtender_network import BudtenderNetworkRepo, NetworkRow

ALIASES: dict[str, list[str]] = {
    "name": ["budtender", "budtender_name", "full_name", "employee", "employee_name"],
    "first_name": ["first", "firstname", "given_name"],
    "last_name": ["last", "lastname", "surname", "family_name"],
    "phone": ["phone_number", "mobile", "cell", "cell_phone", "mobile_number", "telephone"],
    "dispensary": ["store", "shop", "dispensary_name", "location", "retailer", "account"],
    "city": ["town", "dispensary_city", "store_city"],
}
REQUIRED: list[str | tuple[str, ...]] = [("name", "first_name"), "dispensary"]


def parse_row(cols: Columns, cells: list[str]) -> NetworkRow:
    name = cols.get(cells, "name") or " ".join(
        p for p in (cols.get(cells, "first_name"), cols.get(cells, "last_name")) if p)
    name = " ".join(name.split())
    if not name:
        raise RowError("no name")
    if len(name) > 200:
        raise RowError("the name is over 200 characters")
    dispensary = " ".join(cols.get(cells, "dispensary").split())
    if not dispensary:
        raise RowError("no dispensary")
    raw_phone = cols.get(cells, "phone")
    phone = None
    if raw_phone:
        try:
            phone = normalize_phone(raw_phone)
        except ValueError:
            raise RowError(f"“{raw_phone}” is not a phone number") from None
    city = " ".join(cols.get(cells, "city").split()) or None
    return NetworkRow(name, dispensary[:200], phone, city[:100] if city else None)


async def import_network(repo: BudtenderNetworkRepo, path: Path, *, now: Callable[[], datetime],
                         overrides: dict[str, str] | None = None, dry_run: bool = False,
                         progress: bool | None = None, timezone: str = "UTC") -> ImportReport:
    """Read, validate and store the file; raises FileRefused when it cannot be read at all."""
    header, rows = read_rows(path, progress=progress, desc="budtenders")
    cols = Columns.resolve(header, ALIASES, REQUIRED, overrides)
    report = ImportReport("budtenders", str(path))
    good: list[tuple[int, NetworkRow]] = []
    seen_phones: dict[str, int] = {}
    for line, cells in rows:
        report.read += 1
        try:
            row = parse_row(cols, cells)
        except RowError as exc:
            report.skip(line, str(exc))
            continue
        if row.phone and row.phone in seen_phones:
            report.skip(line, f"phone {row.phone} is already on line {seen_phones[row.phone]}")
            continue
        if row.phone:
            seen_phones[row.phone] = line
        good.append((line, row))
    if dry_run:
        report.written = len(good)
        return report
    refused = await repo.write([r for _, r in good], now(), timezone)
    for n, reason in refused:
        report.skip(good[n][0], reason)
    report.written = len(good) - len(refused)
    people, places = await repo.counts()
    report.notes.append(f"the network now has {people} budtender{'' if people == 1 else 's'} at {places} "
                        f"dispensar{'y' if places == 1 else 'ies'}")
    return report


__all__ = ["ALIASES", "import_network", "parse_row"]
