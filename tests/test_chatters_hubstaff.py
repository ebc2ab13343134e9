"""Hubstaff API v2 against a fake server on 127.0.0.1: hours, pagination, token rotation, CSV fallback."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.clock import FakeClock
from coaching.sources.hubstaff import HubstaffClient, HubstaffError, HubstaffSettings, TokenFile, parse_hubstaff_csv
from coaching.sources.inflow_csv import CsvError

DAY = date(2026, 11, 22)
ORG = 42


@dataclass
class FakeHubstaff:
    refresh_token: str = "ref-0"
    access_token: str | None = None
    issued: int = 0
    refreshes: int = 0
    revoke_next: bool = False
    rate_limit_next: bool = False
    requests: list[str] = field(default_factory=list)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return web.json_response({"error": "invalid_grant"}, status=401)
        self.issued += 1
        self.refreshes += 1
        self.access_token, self.refresh_token = f"acc-{self.issued}", f"ref-{self.issued}"
        return web.json_response({"access_token": self.access_token, "refresh_token": self.refresh_token,
                                  "expires_in": 3600, "token_type": "bearer"})

    def _authorised(self, request: web.Request) -> bool:
        if self.revoke_next:
            self.revoke_next = False
            return False
        return request.headers.get("Authorization") == f"Bearer {self.access_token}"

    async def members(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        if not self._authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.query.get("page_start_id") == "3":
            return web.json_response({"members": [{"user_id": 3}], "users": [{"id": 3, "name": "Bea Costa"}]})
        return web.json_response({
            "members": [{"user_id": 1}, {"user_id": 2}, {"user_id": 4}],
            "users": [{"id": 1, "name": "Ana Ruiz"}, {"id": 2, "name": "Carlos Mendes"},
                      {"id": 4, "name": "Dara Okafor"}],  # a member who tracked nothing that day
            "pagination": {"next_page_start_id": 3},
        })

    async def daily(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        if self.rate_limit_next:
            self.rate_limit_next = False
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "2"})
        if not self._authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        assert request.query["date[start]"] == DAY.isoformat() == request.query["date[stop]"]
        return web.json_response({"daily_activities": [
            {"id": 1, "date": "2026-11-22", "user_id": 1, "project_id": 9, "tracked": 4 * 3600},
            {"id": 2, "date": "2026-11-22", "user_id": 1, "project_id": 8, "tracked": 3 * 3600 + 1800},
            {"id": 3, "date": "2026-11-22", "user_id": 2, "project_id": 9, "tracked": 1800},
            {"id": 4, "date": "2026-11-22", "user_id": 3, "project_id": 9, "tracked": 6 * 3600},
        ]})


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeHubstaff, str]]:
    state = FakeHubstaff()
    app = web.Application()
    app.router.add_post("/access_tokens", state.token)
    app.router.add_get(f"/v2/organizations/{ORG}/members", state.members)
    app.router.add_get(f"/v2/organizations/{ORG}/activities/daily", state.daily)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def settings(base: str, tmp_path: Path, token: str | None = "ref-0") -> HubstaffSettings:
    return HubstaffSettings(
        hubstaff_refresh_token=SecretStr(token) if token else None,
        hubstaff_organization_id=ORG,
        hubstaff_token_file=tmp_path / "secrets" / "hubstaff.json",
        hubstaff_api_url=f"{base}/v2",
        hubstaff_token_url=f"{base}/access_tokens",
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_daily_hours_with_pagination_and_a_private_token_file(fake: tuple[FakeHubstaff, str],
                                                                    tmp_path: Path) -> None:
    state, base = fake
    clock = FakeClock(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    client = HubstaffClient(settings(base, tmp_path), clock)
    try:
        hours = await client.daily_hours(DAY)
    finally:
        await client.aclose()
    assert hours == {"Ana Ruiz": 7.5, "Carlos Mendes": 0.5, "Bea Costa": 6.0, "Dara Okafor": 0.0}
    path = tmp_path / "secrets" / "hubstaff.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = TokenFile(path).load()
    assert saved is not None and saved.refresh_token == "ref-1" == state.refresh_token
    assert any("page_start_id=3" in r for r in state.requests)


async def test_rotation_survives_a_restart_and_expiry(fake: tuple[FakeHubstaff, str], tmp_path: Path) -> None:
    state, base = fake
    clock = FakeClock(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    first = HubstaffClient(settings(base, tmp_path), clock)
    await first.daily_hours(DAY)
    await first.aclose()
    # A restart: the env still holds the first (now dead) refresh token; the file must win.
    second = HubstaffClient(settings(base, tmp_path), clock)
    await second.daily_hours(DAY)
    assert state.refreshes == 1  # the saved access token was still valid
    await clock.advance(timedelta(hours=2))
    await second.daily_hours(DAY)
    await second.aclose()
    assert state.refreshes == 2 and state.refresh_token == "ref-2"
    assert TokenFile(tmp_path / "secrets" / "hubstaff.json").load().refresh_token == "ref-2"  # type: ignore[union-attr]


async def test_a_revoked_access_token_is_refreshed_once(fake: tuple[FakeHubstaff, str], tmp_path: Path) -> None:
    state, base = fake
    clock = FakeClock(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    client = HubstaffClient(settings(base, tmp_path), clock)
    await client.daily_hours(DAY)
    state.revoke_next = True
    assert (await client.daily_hours(DAY))["Ana Ruiz"] == 7.5
    assert state.refreshes == 2
    await client.aclose()


async def test_rate_limit_waits_on_the_clock(fake: tuple[FakeHubstaff, str], tmp_path: Path) -> None:
    import asyncio

    state, base = fake
    clock = FakeClock(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    client = HubstaffClient(settings(base, tmp_path), clock)
    state.rate_limit_next = True
    task = asyncio.create_task(client.daily_hours(DAY))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if clock.pending_sleepers:
            break
    assert clock.pending_sleepers == 1
    await clock.advance(2)
    assert (await task)["Bea Costa"] == 6.0
    await client.aclose()


async def test_a_dead_refresh_token_is_a_plain_error(fake: tuple[FakeHubstaff, str], tmp_path: Path) -> None:
    _, base = fake
    client = HubstaffClient(settings(base, tmp_path, token="stolen"), FakeClock())
    with pytest.raises(HubstaffError, match="token refresh failed"):
        await client.daily_hours(DAY)
    await client.aclose()
    client = HubstaffClient(settings(base, tmp_path / "other", token=None), FakeClock())
    with pytest.raises(HubstaffError, match="HUDDLE_HUBSTAFF_REFRESH_TOKEN"):
        await client.daily_hours(DAY)
    await client.aclose()


def test_csv_fallback() -> None:
    text = ("\ufeffMember,Date,Time\nAna Ruiz,2026-11-22,7:30:00\nAna Ruiz,2026-11-22,0:30:00\n"
            "Bea Costa,2026-11-22,0:45\n")
    assert parse_hubstaff_csv(text.encode()) == {DAY: {"Ana Ruiz": 8.0, "Bea Costa": 0.75}}
    assert parse_hubstaff_csv("Name;Hours\nAna;6.5\n") == {None: {"Ana": 6.5}}
    with pytest.raises(CsvError):
        parse_hubstaff_csv("Member,Project\nAna,X\n")
    with pytest.raises(CsvError):
        parse_hubstaff_csv("Member,Time\nAna,lots\n")
