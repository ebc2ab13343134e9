"""AiClient against the fake OpenAI server: every failure is None, successes are validated models."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel, Field

from coaching.ai import AiClient, AiSettings
from tests.fakes import FakeOpenAI


class Verdict(BaseModel):
    summary: str
    score: int = Field(ge=0, le=100)
    tips: list[str]


GOOD = {"summary": "Solid deal", "score": 72, "tips": ["Call on Monday"]}


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def ai(server: FakeOpenAI) -> AsyncIterator[AiClient]:
    client = AiClient(server.settings())
    yield client
    await client.aclose()


async def test_structured_success_returns_the_validated_model(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_json(GOOD)
    result = await ai.structured(Verdict, "You are a coach.", "Deal: ACME, $12,000")
    assert result == Verdict(**GOOD)
    assert ai.usage.ok == 1 and ai.usage.prompt_tokens > 0 and ai.usage.completion_tokens > 0


async def test_request_carries_model_strict_schema_and_messages(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_json(GOOD)
    await ai.structured(Verdict, "SYSTEM TEXT", "USER TEXT")
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.model == "gpt-4o-mini"
    assert req.messages == [{"role": "system", "content": "SYSTEM TEXT"}, {"role": "user", "content": "USER TEXT"}]
    assert req.headers["Authorization"] == "Bearer sk-test-fake-key"
    fmt = req.response_format
    assert fmt is not None and fmt["type"] == "json_schema"
    schema = fmt["json_schema"]
    assert schema["name"] == "Verdict" and schema["strict"] is True
    assert schema["schema"]["additionalProperties"] is False
    assert set(schema["schema"]["required"]) == {"summary", "score", "tips"}


async def test_invalid_json_is_none_and_never_fence_stripped(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_invalid()
    assert await ai.structured(Verdict, "s", "u") is None
    server.reply_text("```json\n" + '{"summary": "x", "score": 1, "tips": []}' + "\n```")
    assert await ai.structured(Verdict, "s", "u") is None
    assert ai.usage.failed == 2


async def test_schema_violation_is_none(server: FakeOpenAI, ai: AiClient, caplog: pytest.LogCaptureFixture) -> None:
    server.reply_json({"summary": "x", "score": 250, "tips": []})
    with caplog.at_level(logging.WARNING, logger="coaching.ai"):
        assert await ai.structured(Verdict, "s", "u") is None
    assert "validation" in caplog.text and "score" in caplog.text
    server.reply_json({"summary": "x"})
    assert await ai.structured(Verdict, "s", "u") is None


async def test_refusal_is_none(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_refusal("I can't help with that.")
    assert await ai.structured(Verdict, "s", "u") is None


async def test_timeout_is_none_and_fast(server: FakeOpenAI, ai: AiClient, caplog: pytest.LogCaptureFixture) -> None:
    import time

    server.hang(5, times=2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="coaching.ai"):
        assert await ai.structured(Verdict, "s", "u", timeout=0.2) is None
    assert time.monotonic() - started < 1.0
    assert "timeout" in caplog.text


async def test_server_error_is_none_after_one_retry(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_status(500, times=2)
    assert await ai.structured(Verdict, "s", "u") is None
    assert len(server.requests) == 2  # max_retries=1


async def test_one_rate_limit_is_retried_then_succeeds(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_status(429)
    server.reply_json(GOOD)
    assert await ai.structured(Verdict, "s", "u") == Verdict(**GOOD)
    assert len(server.requests) == 2


async def test_auth_error_logs_no_key(server: FakeOpenAI, ai: AiClient, caplog: pytest.LogCaptureFixture) -> None:
    server.reply_status(401, "Incorrect API key provided: sk-test-fake-key.")
    with caplog.at_level(logging.DEBUG):
        assert await ai.structured(Verdict, "s", "u") is None
    assert "http 401" in caplog.text
    assert "sk-test-fake-key" not in caplog.text


async def test_connection_refused_is_none(server: FakeOpenAI) -> None:
    settings = server.settings(openai_base_url="http://127.0.0.1:9/v1", openai_timeout=1.0)
    client = AiClient(settings)
    try:
        assert await client.text("s", "u", max_tokens=20) is None
    finally:
        await client.aclose()


async def test_disabled_without_a_key_sends_nothing(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("HUDDLE_OPENAI_API_KEY", raising=False)
    client = AiClient(AiSettings(_env_file=None, openai_base_url=server.base_url))  # type: ignore[call-arg]
    assert not client.enabled
    assert await client.structured(Verdict, "s", "u") is None
    assert await client.text("s", "u", max_tokens=50) is None
    assert server.requests == []
    await client.aclose()


async def test_empty_key_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert not AiClient(AiSettings(_env_file=None)).enabled  # type: ignore[call-arg]


def test_settings_read_openai_api_key_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("HUDDLE_OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")
    monkeypatch.setenv("HUDDLE_OPENAI_MODEL", "local-model")
    settings = AiSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-from-env"
    assert "sk-from-env" not in repr(settings)
    assert settings.openai_base_url == "http://127.0.0.1:1234/v1"
    assert settings.openai_model == "local-model"


async def test_text_success_and_request(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_text("  Suggest the premium flower.  ")
    assert await ai.text("coach", "tip please", max_tokens=60) == "Suggest the premium flower."
    [req] = server.requests
    assert req.body["max_completion_tokens"] == 60
    assert "response_format" not in req.body


async def test_text_failures_are_none(server: FakeOpenAI, ai: AiClient) -> None:
    server.reply_text("This answer was cut of", finish_reason="length")
    assert await ai.text("s", "u", max_tokens=5) is None
    server.reply_text("   ")
    assert await ai.text("s", "u", max_tokens=5) is None
    server.reply_status(500, times=2)
    assert await ai.text("s", "u", max_tokens=5) is None
    server.hang(5, times=2)
    assert await ai.text("s", "u", max_tokens=5, timeout=0.2) is None


async def test_concurrency_is_limited(server: FakeOpenAI) -> None:
    import asyncio

    client = AiClient(server.settings(openai_max_concurrency=2))
    server.reply_json(GOOD, delay=0.05, times=6)
    results = await asyncio.gather(*(client.structured(Verdict, "s", f"deal {i}") for i in range(6)))
    await client.aclose()
    assert results == [Verdict(**GOOD)] * 6
    assert server.max_in_flight == 2


async def test_shared_client_is_injected_as_ai_and_closed(server: FakeOpenAI) -> None:
    from bot.router import Router
    from coaching.ai import ai_client_for
    from tests.flows import Flow

    flow = await Flow.create()
    try:
        client = ai_client_for(flow.app, server.settings())
        assert ai_client_for(flow.app) is client

        router = Router("ai_probe")

        @router.command("probe")
        async def probe(ctx: object, ai: AiClient) -> str:
            verdict = await ai.structured(Verdict, "coach", "deal")
            return verdict.summary if verdict else "rules"

        flow.app.include_router(router)
        ann = await flow.person("Ann", set(), telegram="42")
        server.reply_json(GOOD)
        assert "Solid deal" in str(await flow.send(ann, "probe"))
        assert "rules" in str(await flow.send(ann, "probe"))  # the fake ran out: a 500, then the fallback
    finally:
        await flow.close()


def test_settings_accept_the_prefixed_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("HUDDLE_OPENAI_API_KEY", "sk-prefixed")
    settings = AiSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-prefixed"
