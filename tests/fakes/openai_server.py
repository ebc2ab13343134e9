"""A fake OpenAI Chat Completions server on 127.0.0.1 for tests and benches (no network).

Script what the "model" answers, in order, then point `AiClient`/`AsyncOpenAI` at `server.base_url`:

    async with FakeOpenAI() as server:
        server.reply_json({"score": 3})
        client = AiClient(server.settings())
        ...
        assert server.requests[0].messages[1]["content"] == "..."

Each request takes the next scripted step; with an empty queue the `default` step answers (by
default a 500 that says the script ran out, so a test never passes on an unscripted call). The
client retries once on 429/5xx/timeouts (`max_retries=1`): script a failure twice (`times=2`) to
make a call fail for good. Responses have the real API's shape, including `usage`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JsonObj = dict[str, Any]


@dataclass
class RecordedRequest:
    """One request as the model saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: JsonObj

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def messages(self) -> list[JsonObj]:
        return list(self.body.get("messages") or [])

    @property
    def system(self) -> str:
        return "\n".join(str(m.get("content")) for m in self.messages if m.get("role") == "system")

    @property
    def user(self) -> str:
        return "\n".join(str(m.get("content")) for m in self.messages if m.get("role") == "user")

    @property
    def response_format(self) -> JsonObj | None:
        return self.body.get("response_format")

    @property
    def text(self) -> str:
        """Everything the model was given, for `assert "Bob" not in request.text` checks."""
        return "\n".join(str(m.get("content")) for m in self.messages)


@dataclass
class Step:
    """One scripted answer: a JSON body with a status, after an optional delay."""

    status: int = 200
    body: JsonObj | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content: str | None = None  # assistant message content (200 only)
    refusal: str | None = None
    finish_reason: str = "stop"
    raw: bool = False  # body is sent as-is (not wrapped in a completion)


Responder = Callable[[RecordedRequest], Step]


class FakeOpenAI:
    """aiohttp fake of `POST /v1/chat/completions` with a queue of scripted steps."""

    def __init__(self, *, model: str = "gpt-4o-mini") -> None:
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.default: Responder = lambda _req: Step(
            status=500,
            body={"error": _error("fake server: no scripted response left", "server_error")},
            headers={"retry-after-ms": "10"},
        )
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: deque[Step] = deque()
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FakeOpenAI:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._closing.set()  # release hanging handlers at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def settings(self, **overrides: Any) -> Any:
        """`AiSettings` pointing at this server, with a test key and short timeouts."""
        from coaching.ai import AiSettings

        values: dict[str, Any] = {
            "openai_api_key": "sk-test-fake-key",
            "openai_base_url": self.base_url,
            "openai_model": self.model,
            "openai_timeout": 2.0,
        }
        values.update(overrides)
        return AiSettings(_env_file=None, **values)  # type: ignore[call-arg]

    # ---- scripting -------------------------------------------------------------------------------

    def push(self, step: Step, times: int = 1) -> None:
        for _ in range(times):
            self._queue.append(step)

    def reply_json(self, obj: Any, *, delay: float = 0.0, times: int = 1) -> None:
        """The model answers with this object serialised as JSON content."""
        self.push(Step(content=json.dumps(obj), delay=delay), times)

    def reply_text(self, text: str, *, finish_reason: str = "stop", delay: float = 0.0, times: int = 1) -> None:
        self.push(Step(content=text, finish_reason=finish_reason, delay=delay), times)

    def reply_refusal(self, refusal: str = "I'm sorry, I can't help with that.", *, times: int = 1) -> None:
        self.push(Step(refusal=refusal), times)

    def reply_invalid(self, *, times: int = 1) -> None:
        """Content that is not JSON: fenced, chatty, truncated — what a careless model writes."""
        self.push(Step(content='Sure! Here is the analysis:\n```json\n{"assessment": "good", '), times)

    def reply_status(self, status: int, message: str = "", *, retry_after: float | None = 0.01, times: int = 1) -> None:
        """An API error (429, 500, 401, ...) in OpenAI's error shape; `retry_after` seconds keep retries fast."""
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_error"}.get(
            status, "server_error"
        )
        headers = {"retry-after-ms": str(int(retry_after * 1000))} if retry_after is not None else {}
        body = {
            "error": _error(
                message or f"fake error {status}", kind, code="rate_limit_exceeded" if status == 429 else None
            )
        }
        self.push(Step(status=status, body=body, headers=headers), times)

    def hang(self, seconds: float, *, times: int = 1) -> None:
        """Answer nothing for `seconds` (the client times out first), then a valid empty object."""
        self.push(Step(content="{}", delay=seconds), times)

    def reply_raw(self, status: int, body: str | JsonObj, *, times: int = 1) -> None:
        self.push(Step(status=status, body=body, raw=True), times)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # ---- handler ---------------------------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response(
                {"error": _error("could not parse the JSON body", "invalid_request_error")}, status=400
            )
        recorded = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(recorded)
        step = self._queue.popleft() if self._queue else self.default(recorded)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if step.delay:
                try:
                    await asyncio.wait_for(self._closing.wait(), step.delay)
                except TimeoutError:
                    pass
            return self._respond(step, recorded)
        finally:
            self.in_flight -= 1

    def _respond(self, step: Step, req: RecordedRequest) -> web.Response:
        if step.raw or step.status != 200:
            if isinstance(step.body, str):
                return web.Response(
                    text=step.body, status=step.status, headers=step.headers, content_type="application/json"
                )
            return web.json_response(step.body, status=step.status, headers=step.headers)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in req.messages) + 7
        completion_tokens = len((step.content or step.refusal or "").split()) + 1
        completion = {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": step.content if step.refusal is None else None,
                        "refusal": step.refusal,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": step.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        return web.json_response(completion, headers={"x-request-id": f"req_fake{len(self.requests)}"})


def _error(message: str, kind: str, *, code: str | None = None) -> JsonObj:
    return {"message": message, "type": kind, "param": None, "code": code}
