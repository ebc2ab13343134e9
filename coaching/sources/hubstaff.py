"""Hours worked per chatter per day from Hubstaff (API v2), with a CSV export as fallback.

Hubstaff is the authority on whether someone worked: under one tracked hour is a day off.

OAuth2: Hubstaff rotates the refresh token on every refresh — the old one stops working — so the
new pair is written to the token file (mode 0600, atomically) *before* the access token is used.
The first refresh token comes from `HUDDLE_HUBSTAFF_REFRESH_TOKEN`; after that the file wins.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr

from bot.clock import Clock
from bot.i18n import N_, Day, Msg
from bot.lazy import lazy_module
from bot.settings import HuddleSettings
from channels.markup import esc
from coaching.sources.csv_rows import MixedDecimals, NumberSample, column_letter, decide_decimal
from coaching.sources.inflow_csv import (
    HEADER_LOOKUP,
    MAX_HOURS,
    NEGATIVE,
    CsvError,
    at,
    check_quotes,
    decode,
    mixed,
    normalize_header,
    parse_day,
    parse_hours,
    problem_at,
    read_records,
    refuse,
    sniff_delimiter,
)

if TYPE_CHECKING:
    import httpx
else:
    httpx = lazy_module("httpx")  # the HTTP client only when the API is configured

log = logging.getLogger(__name__)

MAX_PAGES = 50
EXPIRY_MARGIN = timedelta(seconds=60)


class HubstaffSettings(HuddleSettings):
    hubstaff_refresh_token: SecretStr | None = Field(None, description="first refresh token (personal access token)")
    hubstaff_organization_id: int | None = None
    hubstaff_token_file: Path = Field(Path("hubstaff_token.json"), description="rotated tokens, mode 0600")
    hubstaff_api_url: str = "https://api.hubstaff.com/v2"
    hubstaff_token_url: str = "https://account.hubstaff.com/access_tokens"
    hubstaff_csv: Path | None = Field(None, description="fallback: a Hubstaff time export (Member, Date, Time)")
    hubstaff_timeout: float = 20.0

    @property
    def api_configured(self) -> bool:
        return self.hubstaff_organization_id is not None and (
            self.hubstaff_refresh_token is not None or self.hubstaff_token_file.exists()
        )


class HubstaffError(RuntimeError):
    pass


@dataclass(slots=True)
class Tokens:
    access_token: str | None
    refresh_token: str
    expires_at: datetime | None


class TokenFile:
    """The current token pair on disk, readable by the owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Tokens | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise HubstaffError(f"token file {self.path} is unreadable: {exc}") from None
        expires = raw.get("expires_at")
        return Tokens(raw.get("access_token"), raw["refresh_token"],
                      datetime.fromisoformat(expires) if expires else None)

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        })
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hubstaff-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class HubstaffClient:
    def __init__(self, settings: HubstaffSettings, clock: Clock, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.clock = clock
        self.tokens_file = TokenFile(settings.hubstaff_token_file)
        self._http = httpx.AsyncClient(timeout=settings.hubstaff_timeout, transport=transport)
        self._tokens: Tokens | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    def _current(self) -> Tokens:
        if self._tokens is None:
            self._tokens = self.tokens_file.load()
        if self._tokens is None:
            if self.settings.hubstaff_refresh_token is None:
                raise HubstaffError("no Hubstaff refresh token: set HUDDLE_HUBSTAFF_REFRESH_TOKEN")
            self._tokens = Tokens(None, self.settings.hubstaff_refresh_token.get_secret_value(), None)
        return self._tokens

    async def refresh(self) -> Tokens:
        current = self._current()
        response = await self._http.post(
            self.settings.hubstaff_token_url,
            data={"grant_type": "refresh_token", "refresh_token": current.refresh_token},
        )
        if response.status_code != 200:
            raise HubstaffError(f"Hubstaff token refresh failed (HTTP {response.status_code}); "
                                "a new refresh token may be needed")
        body = response.json()
        tokens = Tokens(
            body["access_token"],
            body.get("refresh_token") or current.refresh_token,
            self.clock.now() + timedelta(seconds=int(body.get("expires_in", 3600))),
        )
        self.tokens_file.save(tokens)  # before use: the old refresh token is already dead
        self._tokens = tokens
        log.info("hubstaff token refreshed expires_at=%s", tokens.expires_at)
        return tokens

    async def _access(self) -> str:
        tokens = self._current()
        if tokens.access_token and tokens.expires_at and tokens.expires_at - EXPIRY_MARGIN > self.clock.now():
            return tokens.access_token
        return (await self.refresh()).access_token or ""

    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.settings.hubstaff_api_url.rstrip('/')}/{path.lstrip('/')}"
        for attempt in range(3):
            token = await self._access()
            response = await self._http.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401 and attempt == 0:
                await self.refresh()
                continue
            if response.status_code == 429 and attempt < 2:
                await self.clock.sleep(min(float(response.headers.get("Retry-After", "5") or 5), 60.0))
                continue
            if response.status_code != 200:
                raise HubstaffError(f"Hubstaff {path} answered HTTP {response.status_code}")
            return response.json()
        raise HubstaffError(f"Hubstaff {path} kept failing")

    async def _pages(self, path: str, params: dict[str, Any], key: str) -> tuple[list[dict[str, Any]], list[Any]]:
        items: list[dict[str, Any]] = []
        users: list[Any] = []
        start: Any = None
        for _ in range(MAX_PAGES):
            page = await self._get(path, {**params, **({"page_start_id": start} if start else {})})
            items += page.get(key, [])
            users += page.get("users", [])
            start = (page.get("pagination") or {}).get("next_page_start_id")
            if not start:
                break
        return items, users

    async def daily_hours(self, day: date) -> dict[str, float]:
        """Tracked hours per member name for one day; a member who tracked nothing has 0.

        Every member of the organization is named, so the caller can tell "tracked nothing"
        (0 h: a day off) from "not in Hubstaff at all" (absent: their hours are left alone).
        """
        org = self.settings.hubstaff_organization_id
        members, users = await self._pages(f"organizations/{org}/members", {"include": "users"}, "members")
        names = {u["id"]: u.get("name") or u.get("email") or str(u["id"]) for u in users}
        for m in members:
            names.setdefault(m.get("user_id"), str(m.get("user_id")))
        activities, _ = await self._pages(
            f"organizations/{org}/activities/daily",
            {"date[start]": day.isoformat(), "date[stop]": day.isoformat()},
            "daily_activities",
        )
        seconds: dict[str, float] = defaultdict(float)
        for a in activities:
            if a.get("date", day.isoformat()) != day.isoformat():
                continue
            seconds[names.get(a.get("user_id"), str(a.get("user_id")))] += float(a.get("tracked") or 0)
        everyone = {names[u["id"]]: 0.0 for u in users}  # members Hubstaff names (not bare ids)
        return everyone | {name: s / 3600 for name, s in seconds.items()}


_HUBSTAFF_HEADERS = {"member": "name", "time": "hours", "duration": "hours", "total time": "hours",
                     "tracked": "hours", "time tracked": "hours", "user": "name", "member name": "name"}
EMPTY_EXPORT = N_("The Hubstaff export is empty.")
NEEDS_COLUMNS = N_("The Hubstaff export needs a Member (or Name) column and a Time (or Hours) column.")
NOT_A_TIME = N_("“{raw}” isn't a time or a date")
MORE_THAN_A_DAY = N_("{name} has {hours:.1f} hours on {day}, more than a day")
ONE_DAY = N_("one day")


def looks_like_hubstaff(data: bytes | str, filename: str | None = None) -> bool:
    """A time export (Member/Time columns, or named after Hubstaff) with no sales numbers in it."""
    try:
        text = decode(data) if isinstance(data, bytes) else data.lstrip("\ufeff")
    except CsvError:
        return False
    first = next(iter(text.splitlines()), "")
    headers = {normalize_header(h) for h in next(csv.reader([first], delimiter=sniff_delimiter(text)), [])}
    metrics = {HEADER_LOOKUP.get(h) for h in headers} - {None, "name", "day", "hours", "group"}
    named = bool(filename and "hubstaff" in filename.lower())
    return not metrics and (named or bool(headers & _HUBSTAFF_HEADERS.keys()))


def _key(header: str) -> str | None:
    h = normalize_header(header)
    return _HUBSTAFF_HEADERS.get(h) or HEADER_LOOKUP.get(h)


def parse_hubstaff_csv(data: bytes | str) -> dict[date | None, dict[str, float]]:
    """A Hubstaff time export (Member/Name, Date, Time/Duration/Hours) → {day: {name: hours}}.

    Hubstaff's Time & Activity report has a row per member, day and project (Date, Member,
    Client, Project, Task, Notes, Time as h:mm:ss, Activity %, …): a member's rows for a day are
    added up. Decimal hours follow the file's decimal mark (`7,5` in a semicolon file). Like the
    Inflow export, a file with a value that can't be read or can't be true (negative time, more
    than 24 hours in a day) is refused whole, with the line and column.
    """
    text = decode(data) if isinstance(data, bytes) else data.lstrip("\ufeff")
    if not text.strip():
        raise CsvError(EMPTY_EXPORT)
    delimiter, recs = read_records(text)
    header_at = next((i for i, r in enumerate(recs[:10]) if "name" in {_key(c) for c in r.cells}), 0)
    header = recs[header_at].cells
    keys = [_key(h) for h in header]
    if "name" not in keys or "hours" not in keys:
        raise CsvError(NEEDS_COLUMNS)
    index = {k: keys.index(k) for k in ("name", "hours", "day") if k in keys}
    body = [r for r in recs[header_at + 1 :] if any(c.strip() for c in r.cells)]
    check_quotes(body, delimiter, len(header))
    rows: list[tuple[int, str, str, str]] = []
    for r in body:
        cells = r.cells

        def cell(k: str, cells: list[str] = cells) -> str:
            i = index.get(k)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        name = " ".join(cell("name").split())
        if not name or name.lower() in {"total", "totals", "grand total"}:
            continue
        rows.append((r.start, name, cell("hours"), cell("day")))
    hours_header = header[index["hours"]].strip()
    try:
        mark = decide_decimal((NumberSample(line, hours_header, raw) for line, _, raw, _ in rows
                               if ":" not in raw), delimiter)
    except MixedDecimals as exc:
        raise mixed(exc) from None
    errors: list[Msg] = []
    out: dict[date | None, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    last_line: dict[tuple[date | None, str], int] = {}
    for line, name, raw_hours, raw_day in rows:
        try:
            hours = parse_hours(raw_hours or "0", mark)
            day = parse_day(raw_day) if raw_day else None
        except ValueError:
            bad, col = (raw_hours, "hours") if not _reads(raw_hours, mark) else (raw_day, "day")
            errors.append(problem_at(at(line, column_letter(index[col]), header[index[col]]),
                                     Msg(NOT_A_TIME, raw=esc(bad[:30])), name))
            continue
        if hours < 0:
            errors.append(problem_at(at(line, column_letter(index["hours"]), hours_header),
                                     Msg(NEGATIVE, raw=esc(raw_hours)), name))
            continue
        out[day][name] += hours
        last_line[(day, name)] = line
    for (day, name), line in last_line.items():
        total = out[day][name]
        if total > MAX_HOURS:
            where = at(line, column_letter(index["hours"]), hours_header)
            errors.append(Msg("{at}: {problem}", at=where, problem=Msg(
                MORE_THAN_A_DAY, name=esc(name[:40]), hours=total, day=Day(day) if day else Msg(ONE_DAY))))
    if errors:
        raise refuse(errors)
    return {d: dict(v) for d, v in out.items()}


def _reads(raw: str, mark: str) -> bool:
    try:
        parse_hours(raw or "0", mark)
    except ValueError:
        return False
    return True
