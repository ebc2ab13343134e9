"""Logs never print a secret, in either format, whatever characters the secret holds (issue 17)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot import logs
from bot.settings import HuddleSettings


class Secrets(HuddleSettings):
    telegram_token: SecretStr | None = None


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    saved = set(logs._secrets)
    yield
    logs._secrets.clear()
    logs._secrets.update(saved)
    logging.getLogger().handlers.clear()


SECRETS = ['pa"ss\\word-123', 'back\\slash\\only', 'quote"only"here', "ünïcødé-sécret-9", "tab\there-secret"]


@pytest.mark.parametrize("fmt", ["kv", "json"])
@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_with_quotes_or_backslashes_is_redacted(fmt: str, secret: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUDDLE_TELEGRAM_TOKEN", secret)
    logs.register_secrets(Secrets(_env_file=None))  # type: ignore[call-arg]
    out = io.StringIO()
    logs.configure(fmt, "INFO", stream=out)
    log = logging.getLogger("huddle.test")
    log.info("token is %s", secret)
    log.info("token repr is %r", secret)
    log.info("as JSON: %s", json.dumps({"token": secret}))
    try:
        raise RuntimeError(f"auth failed with {secret}")
    except RuntimeError:
        log.exception("boom")
    text = out.getvalue()
    escaped = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for form in escaped:
        assert form not in text, (form, text)
    assert text.count("***") >= 4
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines[0]["msg"] == "token is ***" and "***" in lines[-1]["exc"]
