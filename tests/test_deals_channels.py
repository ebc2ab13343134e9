"""A sales manager on Slack, Telegram or SMS reads the same deal texts in that channel's own markup.

Through the real adapters against the fake provider servers (tests/fakes/) for Slack and Telegram,
and the Flow harness for SMS: a message in, the messages out checked for the markup that arrived.
Slack's rules for mrkdwn (`*bold*`, `_italic_`, escaping `&`, `<`, `>` only) are from Slack's
"Formatting text for app surfaces" page; Telegram's from the Bot API's "HTML style" section.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.model import Address, Person, Role
from bot.testing import Flow
from storage.deals import DealRepo
from tests.deals_support import NOW, call, deal, task
from tests.fakes.slack_server import FakeSlack, dm
from tests.fakes.telegram_server import FakeTelegram
from tests.slack_support import slack_env

TAG = re.compile(r"</?(b|i|code|pre|a)\b[^>]*>")


def portfolio(owner: str, n: int = 3) -> list:
    items = [deal(301, owner, call(9), task(9, 4), name="Fleet <Acme> & Co", budget="150000")]
    items += [deal(302 + i, owner, call(0.5), task(0.5, -3), created=5) for i in range(n - 1)]
    return items


async def manager(flow: Flow, **address: str) -> Person:
    p = await flow.person("Sam Reed", {Role.SALES_MANAGER}, **address)
    p.external_id = "sam"
    await flow.app.people.update(p, flow.clock.now())
    await DealRepo(flow.app.db).upsert(portfolio("sam"), flow.clock.now())
    return p


# -- Slack: mrkdwn ---------------------------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack.start()
    try:
        yield server
    finally:
        await server.close()


async def test_on_slack_a_manager_gets_mrkdwn_and_no_escaped_tags(slack: FakeSlack,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    slack_env(monkeypatch, slack)
    flow = await Flow.create(plugins=["channels.slack", "handlers.sales_managers"], start=NOW)
    try:
        await manager(flow, slack="U0SAM")
        await slack.wait_connected()
        await slack.push_event(dm("deals", user="U0SAM", ts="1700000100.1"))
        await flow.settle()
        await slack.push_event(dm("analyze #301", user="U0SAM", ts="1700000101.1"))
        await flow.settle()
        texts = [str(p["text"]) for p in slack.posted if p["channel"] == "D0SAM"]
        assert len(texts) == 2, texts
        listing, analysis = texts
        assert listing.startswith("📊 *Your deals*: 3 active") and "*#301* Fleet &lt;Acme&gt; &amp; Co" in listing
        assert analysis.startswith("🔴 *DEAL ANALYSIS* #301") and "📋 Deal: *Fleet &lt;Acme&gt; &amp; Co*" in analysis
        assert "_📏 Rule-based analysis" in analysis
        for text in texts:
            assert not TAG.search(text) and "&lt;b&gt;" not in text and "&lt;i&gt;" not in text
        button = next(p for p in slack.posted if p.get("blocks"))  # the detail button is a real Block Kit button
        assert any(b["type"] == "actions" for b in button["blocks"])
    finally:
        await flow.close()


# -- Telegram: HTML --------------------------------------------------------------------------------


@pytest.fixture
async def telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    monkeypatch.setenv("HUDDLE_TELEGRAM_TOKEN", server.token)
    monkeypatch.setenv("HUDDLE_TELEGRAM_API_URL", server.url)
    monkeypatch.setenv("HUDDLE_TELEGRAM_POLL_TIMEOUT", "5")
    yield server
    await server.stop()


async def test_on_telegram_a_manager_gets_html_and_analyze_takes_the_listed_id(telegram: FakeTelegram) -> None:
    flow = await Flow.create(plugins=["channels.telegram", "handlers.sales_managers"], start=NOW)
    try:
        await manager(flow, telegram="200001")
        telegram.message(200001, "/analyze #301")
        [sent] = await telegram.wait_sent(1, 200001)
        assert sent.parse_mode == "HTML"
        assert sent.raw.startswith("🔴 <b>DEAL ANALYSIS</b> #301")
        assert "<b>Fleet &lt;Acme&gt; &amp; Co</b>" in sent.raw  # the data escaped once, our tags kept
        assert "📋 Deal: Fleet <Acme> & Co" in sent.text and "<b>" not in sent.text  # what Sam reads
    finally:
        await flow.close()


# -- SMS: plain text -------------------------------------------------------------------------------


async def test_by_sms_a_manager_gets_plain_text() -> None:
    flow = await Flow.create(plugins=["handlers.sales_managers"], start=NOW)
    try:
        sam = await manager(flow, sms="+16195550123")
        [listing] = await flow.send(sam, "DEALS")
        [analysis] = await flow.send(sam, "ANALYZE #301")
        assert listing.startswith("📊 Your deals: 3 active") and "#301 Fleet <Acme> & Co" in listing
        assert analysis.startswith("🔴 DEAL ANALYSIS #301") and "📋 Deal: Fleet <Acme> & Co" in analysis
        assert "1. Detailed analysis" in analysis  # the button as a numbered choice
        for text in (listing, analysis):
            assert not TAG.search(text) and "&lt;" not in text and "&amp;" not in text
        [detail] = await flow.send(sam, "1")
        assert "ACTION PLAN" in detail and not TAG.search(detail)
    finally:
        await flow.close()


# -- /deals pages, /analyze #ID --------------------------------------------------------------------


async def test_deals_come_in_pages_of_30_with_a_next_button() -> None:
    flow = await Flow.create(plugins=["handlers.sales_managers"], start=NOW)
    try:
        sam = await flow.person("Sam Reed", {Role.SALES_MANAGER}, telegram="200001", sms="+16195550123")
        sam.external_id = "sam"
        await flow.app.people.update(sam, flow.clock.now())
        await DealRepo(flow.app.db).upsert(portfolio("sam", 45), flow.clock.now())
        [first] = await flow.send(sam, "/deals", channel="telegram")
        assert first.count("\n🟢") + first.count("\n🔴") + first.count("\n🟡") == 30
        assert "Page 1 of 2: deals 1–30." in first
        sent = flow.channels["telegram"].sent[-1]
        assert [(b.text, b.data) for b in sent.buttons] == [("Next 15", "deal:page:2")]
        [second] = await flow.send(sam, "", callback="deal:page:2", channel="telegram")
        assert "Page 2 of 2: deals 31–45." in second and "#301</b>" not in second
        assert flow.channels["telegram"].sent[-1].buttons == []
        assert await flow.send(sam, "/deals 2", channel="telegram") == [second]
        [bad] = await flow.send(sam, "/deals 3", channel="telegram")
        assert "There are 2 pages." in bad and "Usage: /deals [PAGE]" in bad
        # by SMS the button is a numbered line, and "1" turns the page
        [sms] = await flow.send(sam, "DEALS", channel="sms")
        assert sms.rstrip().endswith("1. Next 15\nReply with a number.")
        [page2] = await flow.send(sam, "1", channel="sms")
        assert "Page 2 of 2" in page2
    finally:
        await flow.close()


async def test_analyze_accepts_the_id_as_the_list_prints_it() -> None:
    flow = await Flow.create(plugins=["handlers.sales_managers"], demo=True, start=NOW)
    try:
        alex = await flow.app.people.by_address(Address("telegram", "100001"))
        assert alex is not None
        [listing] = await flow.send(alex, "/deals")
        assert "<b>#5001</b>" in listing
        [brief] = await flow.send(alex, "/analyze #5001")
        assert "DEAL ANALYSIS</b> #5001" in brief
        assert (await flow.send(alex, "/analyze 5001")) == [brief]
        for bad in ("#", "##5001", "#50a1", "#" + "9" * 30):
            [reply] = await flow.send(alex, f"/analyze {bad}")
            assert "is not a valid DEAL_ID" in reply and "Usage: /analyze DEAL_ID" in reply, (bad, reply)
    finally:
        await flow.close()
