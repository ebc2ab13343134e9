"""The Monday report: posted on schedule to the COO's Slack with a link, written as self-contained HTML
and as PDF by the CLI, and open to other plugins' sections (playbook ROI when that exists)."""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import UserError
from coaching.weekly_report import Section, add_section
from storage.budtenders import BudtenderRepo
from tests.flows import Flow

PLUGINS = ["handlers.store", "handlers.customers", "handlers.budtenders", "handlers.team_leads",
           "handlers.sales_managers", "handlers.admin"]
CONFIG = {"report": {"cron": "0 8 * * mon", "timezone": "UTC", "send_to": ["slack:U0COO"],
                     "base_url": "https://huddle.example.com/"}}


@pytest.fixture
async def demo(db_url: str) -> AsyncIterator[Flow]:
    """Demo data on SQLite and on PostgreSQL (the week's aggregates run on both)."""
    flow = await Flow.create(plugins=PLUGINS, demo=True, config=CONFIG, admin_token="t0ken", database_url=db_url)
    try:
        yield flow
    finally:
        await flow.close()


async def _coach(flow: Flow) -> None:
    """Two coaching messages last week to the first demo budtender, one answered."""
    [bud, *_] = await flow.app.people.all(role="budtender")
    assert bud.id is not None
    repo = BudtenderRepo(flow.app.db)
    sent = flow.clock.now() - timedelta(days=3)
    for i in range(2):
        await repo.record(key=f"t:{i}", person_id=bud.id, shift_id=None, kind="pace", variant="A",
                          text=f"tip {i}", sent_at=sent + timedelta(minutes=i))
    await repo.mark_answered(bud.id, sent + timedelta(minutes=5), sent)


async def _cli(flow: Flow, *argv: str) -> int | None:
    command = flow.app.cli_commands["report"]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return await command.run(flow.app, parser.parse_args(["weekly", *argv]))


async def test_monday_morning_the_coo_gets_a_summary_with_a_link(demo: Flow) -> None:
    await _coach(demo)
    monday = datetime(2026, 1, 12, 8, 0, 30, tzinfo=demo.clock.now().tzinfo)
    await demo.advance(monday - demo.clock.now())
    [summary] = demo.sent_to(demo.app.parse_address("slack:U0COO"))
    assert summary.startswith("*Weekly report 2026-W02*")  # Slack's own bold: the outbox rendered the markup
    assert "huddle.example.com/admin/report/weekly?week=2026-W02" in summary
    await demo.advance(timedelta(minutes=5))  # the same week is never posted twice
    assert len(demo.sent_to(demo.app.parse_address("slack:U0COO"))) == 1
    report = await demo.app.deps["weekly_reports"].build("2026-W01")
    assert (report.first_day.isoformat(), report.last_day.isoformat()) == ("2025-12-29", "2026-01-04")
    [coached] = report.data.coaching
    assert (coached.sent, coached.answered) == (2, 1)
    assert report.sales > 0 and report.orders > 0
    assert report.chatters and report.improved()
    assert {d.name for d in report.data.deals} >= {"Alex Morgan"}


async def test_cli_writes_a_self_contained_page(demo: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _coach(demo)
    out = tmp_path / "week.html"
    assert await _cli(demo, "--out", str(out)) == 0
    html = out.read_text(encoding="utf-8")
    assert "wrote" in capsys.readouterr().out
    assert html.startswith("<!doctype html>") and html.count("<svg") >= 2
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)  # nothing fetched from elsewhere
    assert "<script" not in html and "@import" not in html
    assert "Weekly report 2026-W01" in html  # last week, by default
    assert "Playbook ROI: no playbooks module" in html
    assert await _cli(demo) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Weekly report 2026-W01")
    assert "Coaching: 2 sent to 1 budtender, 1 answered (50%)." in printed
    with pytest.raises(UserError, match="2026-W48"):
        await _cli(demo, "--week", "last tuesday")


async def test_a_plugin_adds_its_section(demo: Flow, tmp_path: Path) -> None:
    async def playbooks(start: datetime, end: datetime) -> Section:
        return Section("Playbook ROI", ["Playbook", "Sent", "Revenue"], [["Win-back", "12", "$340.00"]])

    add_section(demo.app, "playbooks", playbooks)
    with pytest.raises(ValueError, match="twice"):
        add_section(demo.app, "playbooks", playbooks)
    out = tmp_path / "week.html"
    await _cli(demo, "--out", str(out))
    html = out.read_text(encoding="utf-8")
    assert "Win-back" in html and "no playbooks module" not in html


@pytest.mark.skipif(shutil.which("/usr/bin/chromium") is None, reason="Debian's chromium is not installed")
async def test_cli_prints_a_pdf_with_chromium(demo: Flow, tmp_path: Path) -> None:
    pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    out = tmp_path / "week.pdf"
    assert await _cli(demo, "--out", str(out)) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF") and len(data) > 5000
    assert b"/Type /Page" in data or b"/Type/Page" in data
