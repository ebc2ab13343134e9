"""The COO dashboard: self-contained HTML, served behind the admin token, written by the CLI, and
rendered by headless Chromium with no console errors (a screenshot is kept as a test artifact)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.errors import UserError
from bot.model import Address
from coaching.roles import Role
from tests.flows import Flow

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
ARTIFACTS = Path(os.environ.get("HUDDLE_TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture
async def demo() -> AsyncIterator[Flow]:
    flow = await Flow.create(plugins=["handlers.team_leads"], start=START, demo=True, admin_token="s3cret-token")
    await flow.app.deps["chatters"].repo.add_chatter("Sol Reyes", "Team South", START)
    try:
        yield flow
    finally:
        await flow.close()


async def test_dashboard_html_is_self_contained_with_every_part(demo: Flow) -> None:
    html = await demo.app.deps["chatters"].dashboard_html(30)
    assert html.startswith("<!doctype html>")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|https?://|@import", html)  # no CDN, nothing fetched
    assert '<label for="t0">Team North</label>' in html and '<label for="t1">Team South</label>' in html
    for tile in ("Total sales", "Avg $/hr", "Avg CVR", "Total fans", "Active"):
        assert f"<span>{tile}</span>" in html
    assert html.count('data-status="scored"') == 7
    assert "Day off" in html and "No data available" in html
    assert html.count('aria-label="7-day Sales per hour"') == 7
    assert 'aria-label="fans per hour"' in html and 'aria-label="daily team sales"' in html
    assert 'aria-label="funnel"' in html and "Bottleneck:" in html
    assert "improving</span>" in html or "declining</span>" in html
    assert "Traffic imbalance" in html
    assert "Reports from team leads" in html and "Missed the first hour" in html
    assert "▲" in html or "▼" in html


async def test_dashboard_escapes_names(demo: Flow) -> None:
    repo = demo.app.deps["chatters"].repo
    await repo.add_chatter("<script>alert(1)</script>", "Team South", START)
    html = await demo.app.deps["chatters"].dashboard_html(7)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


async def test_served_at_dashboard_behind_the_admin_token(demo: Flow) -> None:
    port = await demo.app.http.start(host="127.0.0.1", port=0)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/dashboard") as r:
            assert r.status == 401
        async with session.get(f"http://127.0.0.1:{port}/dashboard",
                               headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with session.get(f"http://127.0.0.1:{port}/dashboard?days=14",
                               headers={"Authorization": "Bearer s3cret-token"}) as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert "Chatter coaching" in await r.text()


async def test_cli_ingest_and_dashboard(demo: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "inflow.csv"
    export.write_text("Name;Total Sales ($);CVR\nAna Ruiz;$1.234,50;12,5%\nNobody Known;$5,00;1%\n", encoding="utf-8")
    ingest = demo.app.cli_commands["ingest"]
    parser = argparse.ArgumentParser()
    ingest.configure(parser)
    assert await ingest.run(demo.app, parser.parse_args([str(export), "--date", "2026-11-23"])) == 0
    out = capsys.readouterr().out
    assert "Mon 23 Nov: 1 chatter saved" in out and "Nobody Known" in out and "`" not in out
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Sales\nAna Ruiz,lots\n", encoding="utf-8")
    with pytest.raises(UserError, match="saved nothing"):  # an operator's mistake: one line, exit code 2
        await ingest.run(demo.app, parser.parse_args([str(bad)]))
    with pytest.raises(UserError, match="can't read"):
        await ingest.run(demo.app, parser.parse_args([str(tmp_path / "missing.csv")]))

    dashboard = demo.app.cli_commands["dashboard"]
    parser = argparse.ArgumentParser()
    dashboard.configure(parser)
    out_file = tmp_path / "dash.html"
    assert await dashboard.run(demo.app, parser.parse_args(["--out", str(out_file)])) == 0
    assert "Chatter coaching" in out_file.read_text(encoding="utf-8")


async def test_demo_seed_gives_two_leads_and_a_real_briefing(demo: Flow) -> None:
    for slack in ("U0TL0001", "U0TL0002"):
        person = await demo.app.people.by_address(Address("slack", slack))
        assert person is not None and Role.TEAM_LEAD in person.roles
    lead = await demo.app.people.by_address(Address("slack", "U0TL0001"))
    assert lead is not None
    who = (await demo.send(lead, "who"))[-1]
    assert who.count("\n") == 3


def _fresh_artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    return path


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
async def test_dashboard_renders_in_headless_chromium(demo: Flow, tmp_path: Path) -> None:
    page = tmp_path / "dashboard.html"
    page.write_text(await demo.app.deps["chatters"].dashboard_html(30), encoding="utf-8")
    shot = _fresh_artifact("chatters_dashboard.png")
    proc = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1300,1400",
        page.as_uri(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    console = [line for line in err.decode(errors="replace").splitlines() if ":CONSOLE" in line]
    assert console == []
    assert shot.exists() and shot.stat().st_size > 20_000
    proc = await asyncio.create_subprocess_exec(
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile2'}",
        "--dump-dom", page.as_uri(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    dom, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    text = dom.decode()
    assert text.count('class="card"') == 7 and "Team North" in text and "<svg" in text
