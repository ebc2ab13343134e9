"""The one door to a language model: OpenAI-compatible Chat Completions with strict Structured Outputs.

Every call either returns a validated result or `None` — never raises — so each caller keeps a
deterministic rule-based answer for `None` and the product works fully offline. Why `None` happened
(no key, timeout, HTTP error, refusal, invalid output) goes to the log, with token usage on success;
the API key never does. Callers build the prompt, so they decide what data the model sees: keep it to
the one person being answered about.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
from pydantic import AliasChoices, Field, SecretStr

from bot.settings import HuddleSettings

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionMessageParam

    from bot.app import App

log = logging.getLogger(__name__)

M = TypeVar("M", bound=pydantic.BaseModel)


class AiSettings(HuddleSettings):
    """Model access. Without a key the AI paths are off and callers answer from rules."""

    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "HUDDLE_OPENAI_API_KEY", "openai_api_key"),
        description="API key; unset or empty disables the model",
    )
    openai_base_url: str | None = Field(None, description="any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    openai_model: str = "gpt-4o-mini"
    openai_timeout: float = Field(20.0, gt=0, description="seconds for one call, retry included")
    openai_max_concurrency: int = Field(4, ge=1, description="calls in flight at once per process")


@dataclass
class AiUsage:
    """Running totals for this client (for logs, benches and the admin API)."""

    calls: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AiClient:
    """Thin, failure-proof wrapper over `openai.AsyncOpenAI`.

    One client per process (see `ai_client_for`): its semaphore is the concurrency limit.
    """

    def __init__(self, settings: AiSettings | None = None) -> None:
        self.settings = settings if settings is not None else AiSettings()
        self.usage = AiUsage()
        self._semaphore = asyncio.Semaphore(self.settings.openai_max_concurrency)
        key = self.settings.openai_api_key.get_secret_value() if self.settings.openai_api_key else ""
        self._key = key
        self._client: openai.AsyncOpenAI | None = None
        if key:
            import openai  # only with a key: the SDK takes most of a second to import

            self._client = openai.AsyncOpenAI(
                api_key=key,
                base_url=self.settings.openai_base_url or None,
                timeout=self.settings.openai_timeout,
                max_retries=1,
            )
            log.info("ai enabled model=%s base_url=%s", self.model, self.settings.openai_base_url or "(openai)")
        else:
            log.info("ai disabled: no OPENAI_API_KEY; callers answer from deterministic rules")

    @property
    def enabled(self) -> bool:
        return self._client is not None

    @property
    def model(self) -> str:
        return self.settings.openai_model

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def structured(
        self,
        schema: type[M],
        system: str,
        user: str,
        *,
        timeout: float | None = None,
        label: str = "structured",
        images: Sequence[tuple[bytes, str]] = (),
    ) -> M | None:
        """Ask for a JSON object matching `schema` (strict JSON schema) and validate it; None on any failure.

        Strict mode makes every field required: write schema models without defaults, use `X | None`
        for "may be absent", `Literal[...]` for choices, and int/str rather than Decimal or datetime.
        Field constraints (`Field(ge=0, le=100)`) are sent and also enforced on the way back.
        `images` (bytes, MIME type) go with the user message as data URLs, for vision models.
        """
        if self._client is None:
            log.debug("ai skipped (disabled) label=%s", label)
            return None
        client = self._client

        async def call() -> Any:
            return await client.chat.completions.parse(
                model=self.model,
                messages=_messages(system, user, images),
                response_format=schema,
                timeout=self._timeout(timeout),
            )

        completion = await self._run(call, label, timeout)
        if completion is None:
            return None
        message = completion.choices[0].message if completion.choices else None
        if message is None:
            return self._fail(label, "no choices in the response")
        if message.refusal:
            return self._fail(label, f"refusal: {message.refusal[:200]!r}")
        if message.parsed is None:
            return self._fail(label, "empty content")
        return message.parsed

    async def text(
        self,
        system: str,
        user: str,
        *,
        max_tokens: int,
        timeout: float | None = None,
        label: str = "text",
    ) -> str | None:
        """Ask for free text of at most `max_tokens`; None on any failure, a refusal, or a cut-off answer."""
        if self._client is None:
            log.debug("ai skipped (disabled) label=%s", label)
            return None
        client = self._client

        async def call() -> Any:
            return await client.chat.completions.create(
                model=self.model,
                messages=_messages(system, user),
                max_completion_tokens=max_tokens,
                timeout=self._timeout(timeout),
            )

        completion = await self._run(call, label, timeout)
        if completion is None:
            return None
        choice = completion.choices[0] if completion.choices else None
        if choice is None:
            return self._fail(label, "no choices in the response")
        if choice.message.refusal:
            return self._fail(label, f"refusal: {choice.message.refusal[:200]!r}")
        if choice.finish_reason == "length":
            return self._fail(label, f"answer cut off at max_tokens={max_tokens}")
        content = (choice.message.content or "").strip()
        if not content:
            return self._fail(label, "empty content")
        return content

    def _timeout(self, timeout: float | None) -> float:
        return timeout if timeout is not None else self.settings.openai_timeout

    async def _run(self, call: Any, label: str, timeout: float | None) -> Any:
        """Run one API call under the concurrency limit and an overall deadline; log usage or the failure."""
        import openai  # already loaded: a call is only made with a client

        self.usage.calls += 1
        deadline = self._timeout(timeout)
        async with self._semaphore:  # waiting for a slot does not eat into the deadline
            started = time.monotonic()
            try:
                async with asyncio.timeout(deadline):
                    completion = await call()
            except (TimeoutError, openai.APITimeoutError):
                return self._fail(label, f"timeout after {deadline:g}s")
            except openai.APIStatusError as exc:
                return self._fail(label, f"http {exc.status_code}: {self._redact(_error_message(exc))}")
            except openai.APIConnectionError as exc:
                return self._fail(label, f"connection error: {self._redact(str(exc))}")
            except openai.LengthFinishReasonError:
                return self._fail(label, "answer cut off (finish_reason=length)")
            except openai.ContentFilterFinishReasonError:
                return self._fail(label, "answer blocked by the content filter")
            except pydantic.ValidationError as exc:
                return self._fail(label, f"output failed validation: {exc.error_count()} error(s): {_first_error(exc)}")
            except openai.OpenAIError as exc:
                return self._fail(label, f"{type(exc).__name__}: {self._redact(str(exc))}")
        usage = getattr(completion, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self.usage.ok += 1
        log.info(
            "ai call label=%s model=%s prompt_tokens=%d completion_tokens=%d ms=%d",
            label,
            getattr(completion, "model", self.model),
            prompt_tokens,
            completion_tokens,
            (time.monotonic() - started) * 1000,
        )
        return completion

    def _fail(self, label: str, reason: str) -> None:
        self.usage.failed += 1
        log.warning("ai call failed label=%s model=%s reason=%s; falling back to rules", label, self.model, reason)
        return None

    def _redact(self, text: str) -> str:
        text = text[:300]
        return text.replace(self._key, "[redacted]") if self._key else text


def _messages(system: str, user: str,
              images: Sequence[tuple[bytes, str]] = ()) -> list[ChatCompletionMessageParam]:
    if not images:
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
    parts: list[Any] = [{"type": "text", "text": user}]
    for content, mimetype in images:
        url = f"data:{mimetype};base64,{base64.b64encode(content).decode('ascii')}"
        parts.append({"type": "image_url", "image_url": {"url": url, "detail": "high"}})
    return [{"role": "system", "content": system}, {"role": "user", "content": parts}]


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)
    return exc.message


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
    return f"{where}: {err.get('msg', '')}"[:200]


def ai_client_for(app: App, settings: AiSettings | None = None) -> AiClient:
    """The process-wide client: created by the first plugin that asks (in `setup`), closed on shutdown.

    Shared so that every feature counts against one concurrency limit; handlers also get it injected
    as a parameter named `ai`. `settings` only matters to the first caller (tests pass the fake's).
    """
    existing = app.deps.get("ai")
    if isinstance(existing, AiClient):
        return existing
    client = AiClient(settings)
    app.provide("ai", client)

    async def close(_app: App) -> None:
        await client.aclose()

    app.on_shutdown(close)
    return client
