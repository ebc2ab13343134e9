"""Playbook ROI where the COO looks for it: the weekly report's section, with the same figures as
`playbooks report`, and a chart of each playbook's incremental revenue and interval beside what a
last-touch report would claim, rendered in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coaching.playbooks import held_out
from coaching.weekly_report import Section, interval_chart, money
from handlers.playbooks import playbooks_of, roi
from handlers.store import services
from tests.flows import Flow
from tests.test_playbooks_flow import THANKS, Pos, make_store, tick

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
REPORT = {"report": {"cron": "0 8 * * mon", "timezone": "America/Los_Angeles"}}


def _phone(n: int) -> str:
    return f"+1619555{1000 + n:04d}"


async def _week_of_journeys(flow: Flow, pos: Pos) -> tuple[list[int], list[int]]:
    """40 first orders on Tuesday of 2026-W48; half the treated come back, one held-out customer too."""
    for n in range(1, 41):
        await pos.order(f"e{n}", f"T{n}", "80.00", customer=f"C{n}", phone=_phone(n))
    await tick(flow)
    await tick(flow, 13.5)  # the thank-you goes out at 10:00 local
    held, treated = [], []
    for n in range(1, 41):
        c = await services(flow.app).customers.by_external_id(f"C{n}")
        assert c is not None
        (held if held_out(f"c{c.id}", "thank-you", 0.5) else treated).append(n)
    await tick(flow, 24)
    for n in treated[::2]:
        await pos.order(f"back-{n}", f"B{n}", "100.00", customer=f"C{n}", phone=_phone(n))
    await pos.order("back-h", "BH", "40.00", customer=f"C{held[0]}", phone=_phone(held[0]))
    return held, treated


async def test_the_weekly_report_shows_each_playbooks_roi_as_the_cli_counts_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = "".join(f"C{n},P{n},X,619-555-{1000 + n:04d},0\n" for n in range(1, 41))
    flow, session, pos = await make_store(monkeypatch, tmp_path, None, [{**THANKS, "holdout": 0.5}], rows,
                                          extra_plugins=("handlers.admin",), config=REPORT)
    try:
        held, treated = await _week_of_journeys(flow, pos)
        reports = flow.app.deps["weekly_reports"]
        report = await reports.build("2026-W48")
        [section] = [s for s in report.sections if s.title == "Playbook ROI"]
        assert not any("Playbook ROI" in m for m in report.missing)
        [row] = section.rows
        f = (await roi(flow.app, playbooks_of(flow.app)))["thank-you"]  # what `playbooks report` prints
        assert row[:6] == ["thank-you", "40", str(len(held)), str(len(treated)), "0", str(len(treated[::2]) + 1)]
        assert (f.eligible, f.held, f.sent) == (40, len(held), len(treated))
        i = f.impact
        assert i.incremental is not None and i.low is not None and i.high is not None
        assert row[6:10] == [money(i.per_treated), money(i.per_held),
                             f"{money(i.incremental)} [{money(i.low)}, {money(i.high)}]", money(f.last_touch)]
        assert i.incremental > 0 and f.last_touch == 100 * len(treated[::2])  # last touch claims every return
        assert section.chart.count('class="estimate"') == 1 and "last touch" in section.chart
        # a later week has no journeys of its own: the section says so instead of repeating this one
        later = await reports.build("2026-W49")
        [empty] = [s for s in later.sections if s.title == "Playbook ROI"]
        assert empty.rows == [] and empty.note == "No playbook journey started this week."
        html = reports.html(report)
        assert 'id="section-playbook-roi"' in html and html.count('class="estimate"') == 1
        if shutil.which(CHROMIUM) is not None:
            await _render(html, tmp_path)
    finally:
        await session.close()
        await flow.app.http.stop()
        await flow.close()


async def _render(html: str, tmp_path: Path) -> None:
    """The chart is drawn: its dot sits inside the chart, between the interval's ends, and visible."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    page_file = tmp_path / "week.html"
    page_file.write_text(html, encoding="utf-8")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(page_file.as_uri())
            section = page.locator("#section-playbook-roi")
            await section.scroll_into_view_if_needed()
            chart = await section.locator("svg").bounding_box()
            dot = await section.locator("circle.estimate").bounding_box()
            assert chart is not None and dot is not None and dot["width"] > 4
            assert chart["x"] <= dot["x"] and dot["x"] + dot["width"] <= chart["x"] + chart["width"]
            assert "incremental (95 % ci)" in (await section.inner_text()).lower()
            await section.screenshot(path=str(ARTIFACTS / "playbook_roi.png"))
        finally:
            await browser.close()


def test_the_interval_chart_draws_zero_and_says_which_intervals_cross_it() -> None:
    svg = interval_chart([("win-back", 120.0, 40.0, 200.0, 300.0), ("welcome", 10.0, -30.0, 50.0, 80.0),
                          ("<b>odd</b>", -20.0, -50.0, -5.0, 0.0)])
    assert svg.count('class="estimate"') == 3 and svg.count('class="last-touch"') == 3
    assert "#0f9d58" in svg and "#1a73e8" in svg and "#d93025" in svg  # above, across and below zero
    assert "<b>" not in svg and "&lt;b&gt;odd" in svg
    assert interval_chart([]) == ""
    assert Section("t", [], []).chart == ""
