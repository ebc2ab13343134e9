"""Structured logging (key=value or JSON) that never prints a secret.

Secrets are every `SecretStr` of the loaded settings plus environment variables whose names say
they are secret; any occurrence in a formatted record is replaced by `***`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEY|_KEY$)", re.I)
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """Remember one secret, with the forms it takes when escaped (`%r`, JSON), so no log line carries it."""
    if len(value) < 6:
        return
    _secrets.add(value)
    for escaped in (repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
        if len(escaped) >= 6:
            _secrets.add(escaped)


def register_secrets(*settings: BaseSettings) -> None:
    """Remember secret values so that no log line can carry them."""
    for s in settings:
        for name in type(s).model_fields:
            value = getattr(s, name, None)
            if isinstance(value, SecretStr):
                add_secret(value.get_secret_value())
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name):
            add_secret(value)


def redact(text: str) -> str:
    """Every known secret in `text` replaced by `***`, the longest first (one may contain another)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line. Secrets are redacted in each value *before* JSON escaping: a secret
    holding `"` or `\\` is written escaped (`\\"`, `\\\\`), so redacting the encoded line would miss it."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(data, ensure_ascii=False))


def configure(fmt: str = "kv", level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiosqlite", "apscheduler.scheduler", "apscheduler.executors.default", "alembic.runtime"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
