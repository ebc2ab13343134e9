"""The deal coach against the fake OpenAI-compatible server: valid, invalid, timeout, cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from coaching.ai import AiClient
from coaching.deal_coach import DealAnalysis
from tests.deals_support import good_analysis, make_flow, set_ai
from tests.fakes import FakeOpenAI


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def test_valid_output_is_shown_as_ai_and_sent_once(server: FakeOpenAI) -> None:
    flow, ann, _ = await make_flow()
    client = AiClient(server.settings())
    set_ai(flow, client)  # type: ignore[arg-type]
    try:
        server.reply_json(good_analysis().model_dump(mode="json"))
        [reply] = await flow.send(ann, "/analyze 101")
        assert "🤖 AI analysis" in reply and "Call Dana" in reply
        [req] = server.requests
        schema = (req.response_format or {}).get("json_schema", {})
        assert schema.get("name") == "DealAnalysis" and schema.get("strict") is True
        assert "Deal 101" in req.user and "Deal 201" not in req.text and "Борис" not in req.text
        assert "English" in req.system
        # the same deal again, and through the button: served from the cache, no request
        await flow.send(ann, "/analyze 101")
        [detail] = await flow.send(ann, "", callback="deal:detail:101")
        assert "Call Dana" in detail and len(server.requests) == 1
    finally:
        await flow.close()
        await client.aclose()


async def test_invalid_json_gives_the_labelled_rule_analysis(server: FakeOpenAI) -> None:
    flow, ann, boris = await make_flow()
    client = AiClient(server.settings())
    set_ai(flow, client)  # type: ignore[arg-type]
    try:
        server.reply_invalid()
        [reply] = await flow.send(ann, "/analyze 101")
        assert "📏 Rule-based analysis (AI unavailable)" in reply and "Call the client today" in reply
        bad = good_analysis().model_dump(mode="json")
        bad["conversion_probability"] = 250  # schema-valid JSON, out of range: rejected too
        server.reply_json(bad)
        [reply] = await flow.send(boris, "/analyze 201")
        assert "Анализ по правилам (ИИ недоступен)" in reply
        assert "Russian" in server.requests[-1].system
    finally:
        await flow.close()
        await client.aclose()


async def test_timeout_gives_the_rule_analysis_quickly(server: FakeOpenAI) -> None:
    flow, ann, _ = await make_flow()
    client = AiClient(server.settings())
    set_ai(flow, client)  # type: ignore[arg-type]
    flow.app.deps["deal_desk"].coach.timeout = 0.3
    try:
        server.hang(5, times=2)
        [reply] = await flow.send(ann, "/analyze 101")
        assert "Rule-based analysis" in reply
    finally:
        await flow.close()
        await client.aclose()


def test_the_schema_is_strict_friendly() -> None:
    schema = DealAnalysis.model_json_schema()
    assert set(schema["required"]) == set(DealAnalysis.model_fields)
    assert schema["properties"]["conversion_probability"]["maximum"] == 100
