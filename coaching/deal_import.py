"""Deals and their events from a JSON or CSV file, for teams without amoCRM.

JSON: `{"deals": [...]}` or a bare list; each deal has `id`, `name`, `created_at` and optionally
`budget`, `currency`, `stage`, `pipeline`, `status` (active/won/lost), `owner` (the manager's
external id, Telegram id or exact name), `contact` and `events` (`kind`: call, message,
stage_change or task, `at`, and per kind `duration_s`, `direction`, `text`, `from_stage`,
`to_stage`, `due_at`, `done`, `done_at`, `key`).

CSV: one row per event with the deal's columns repeated: `deal_id, deal_name, created_at, budget,
currency, stage, status, owner, contact, kind, at, duration_s, direction, text, from_stage,
to_stage, due_at, done, done_at, key`; a row with an empty `kind` is the deal alone.

Times are ISO 8601; a time without an offset is read as UTC. Errors name the deal or row.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coaching.deals import Deal, DealEvent, DealStatus, EventKind

MAX_DEALS = 200_000


class DealFileError(ValueError):
    """A file we cannot load, with the place and the reason in one line."""


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    at: datetime
    duration_s: int | None = Field(None, ge=0, le=86400)
    direction: str | None = Field(None, max_length=8)
    text: str | None = Field(None, max_length=10_000)
    from_stage: str | None = Field(None, max_length=200)
    to_stage: str | None = Field(None, max_length=200)
    due_at: datetime | None = None
    done: bool = False
    done_at: datetime | None = None
    key: str | None = Field(None, max_length=200)

    _aware = field_validator("at", "due_at", "done_at")(_aware)


class DealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=500)
    created_at: datetime
    budget: Decimal = Decimal("0")
    currency: str = Field("USD", min_length=1, max_length=8)
    stage: str = Field("", max_length=200)
    pipeline: str | None = Field(None, max_length=200)
    status: DealStatus = DealStatus.ACTIVE
    owner: str | None = Field(None, max_length=200)
    contact: str | None = Field(None, max_length=300)
    events: list[EventIn] = Field(default_factory=list)

    _aware = field_validator("created_at")(_aware)

    @field_validator("budget", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Any:
        if isinstance(value, float):
            value = repr(value)
        if isinstance(value, str):
            cleaned = re.sub(r"[\s,$€£₽]", "", value) or "0"
            try:
                return Decimal(cleaned)
            except InvalidOperation:
                raise ValueError(f"not an amount: {value!r}") from None
        return value

    def to_deal(self, source: str) -> Deal:
        return Deal(
            id=self.id, name=self.name, created_at=self.created_at, stage=self.stage, budget=self.budget,
            currency=self.currency.upper(), status=self.status, owner_ref=self.owner, contact=self.contact,
            pipeline=self.pipeline, source=source,
            events=[DealEvent(kind=e.kind, at=e.at, duration_s=e.duration_s, direction=e.direction, text=e.text,
                              from_stage=e.from_stage, to_stage=e.to_stage, due_at=e.due_at, done=e.done,
                              done_at=e.done_at, key=e.key) for e in self.events],
        )


def _where(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{prefix}{'.' + loc if loc else ''}: {err['msg']}"


def parse_json(text: str, source: str = "import") -> list[Deal]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DealFileError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    items = data.get("deals") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DealFileError('expected a list of deals or {"deals": [...]}')
    return _validate(items, [f"deals[{i}]" for i in range(len(items))], source)


CSV_DEAL = {"deal_id": "id", "deal_name": "name", "created_at": "created_at", "budget": "budget",
            "currency": "currency", "stage": "stage", "pipeline": "pipeline", "status": "status", "owner": "owner",
            "contact": "contact"}
CSV_EVENT = ("kind", "at", "duration_s", "direction", "text", "from_stage", "to_stage", "due_at", "done", "done_at",
             "key")


def parse_csv(text: str, source: str = "import", columns: dict[str, str] | None = None) -> list[Deal]:
    """`columns` maps our field names to the file's column names (`{"deal_id": "Lead ID"}`)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rename = {v.strip(): k for k, v in (columns or {}).items()}
    if reader.fieldnames:
        reader.fieldnames = [rename.get(f.strip(), f.strip()) for f in reader.fieldnames]
    fields = set(reader.fieldnames or [])
    missing = {"deal_id", "deal_name", "created_at"} - fields
    if missing:
        raise DealFileError(f"CSV is missing the column(s): {', '.join(sorted(missing))}")
    deals: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k}
        did = row.get("deal_id", "")
        if not did:
            raise DealFileError(f"row {n}: deal_id is empty")
        deal = deals.setdefault(did, {"events": []})
        first_row.setdefault(did, n)
        for col, name in CSV_DEAL.items():
            if row.get(col) and name not in deal:
                deal[name] = row[col]
        if row.get("kind"):
            ev = {k: row[k] for k in CSV_EVENT if row.get(k)}
            deal["events"].append(ev)
    return _validate(list(deals.values()), [f"deal {k} (row {first_row[k]})" for k in deals], source)


def _validate(items: list[Any], places: list[str], source: str) -> list[Deal]:
    if len(items) > MAX_DEALS:
        raise DealFileError(f"too many deals ({len(items)}); the limit is {MAX_DEALS}")
    out: list[Deal] = []
    seen: set[int] = set()
    for item, place in zip(items, places, strict=True):
        if not isinstance(item, dict):
            raise DealFileError(f"{place}: expected an object")
        try:
            d = DealIn.model_validate(item)
        except ValidationError as exc:
            raise DealFileError(_where(exc, place)) from None
        if d.id in seen:
            raise DealFileError(f"{place}: deal id {d.id} appears twice")
        seen.add(d.id)
        out.append(d.to_deal(source))
    return out


def load_file(path: Path, source: str = "import", columns: dict[str, str] | None = None) -> list[Deal]:
    """Parse by extension (.json or .csv); `columns` renames CSV columns."""
    if not path.exists():
        raise DealFileError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DealFileError(f"{path}: not UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        if columns:
            raise DealFileError("--map applies to CSV files only")
        return parse_json(text, source)
    if suffix == ".csv":
        return parse_csv(text, source, columns)
    raise DealFileError(f"{path}: expected a .json or .csv file")
