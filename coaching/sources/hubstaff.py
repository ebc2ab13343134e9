"""Hours worked per chatter per day from Hubstaff (API v2), with a CSV export as fallback.

Hubstaff is the authority on whether someone worked: under one tracked hour is a day off.

OAuth2: Hubstaff rotates the refresh token on every refresh — the old one stops working — so the
new pair is written to the token file (mode 0600, atomically) *before* the access token is used.
The first refresh token comes from `HUDDLE_HUBSTAFF_REFRESH_TOKEN`; after that the file wins.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr

from bot.clock import Clock
from bot.settings import HuddleSettings
from coaching.sources.inflow_csv import (
    HEADER_LOOKUP,
    CsvError,
    decode,
    normalize_header,
    parse_day,
    parse_hours,
    sniff_delimiter,
)

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
        """Tracked hours per member name for one day (members with no time are left out)."""
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
        return {name: s / 3600 for name, s in seconds.items()}


_HUBSTAFF_HEADERS = {"member": "name", "time": "hours", "duration": "hours", "total time": "hours",
                     "tracked": "hours", "time tracked": "hours"}


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


def parse_hubstaff_csv(data: bytes | str) -> dict[date | None, dict[str, float]]:
    """A Hubstaff time export (Member/Name, Date, Time/Duration/Hours) → {day: {name: hours}}."""
    text = decode(data) if isinstance(data, bytes) else data.lstrip("\ufeff")
    if not text.strip():
        raise CsvError("The Hubstaff export is empty.")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text)))
    header = [normalize_header(h) for h in rows[0]]
    keys = [_HUBSTAFF_HEADERS.get(h) or HEADER_LOOKUP.get(h) for h in header]
    if "name" not in keys or "hours" not in keys:
        raise CsvError("The Hubstaff export needs a Member (or Name) column and a Time (or Hours) column.")
    out: dict[date | None, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for n, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        record = {k: cells[i].strip() for i, k in enumerate(keys) if k and i < len(cells)}
        if not record.get("name") or record["name"].lower() in {"total", "totals"}:
            continue
        try:
            hours = parse_hours(record.get("hours") or "0")
            day = parse_day(record["day"]) if record.get("day") else None
        except ValueError:
            raise CsvError(f"line {n} of the Hubstaff export has a time or date I can't read.") from None
        out[day][" ".join(record["name"].split())] += hours
    return {d: dict(v) for d, v in out.items()}
