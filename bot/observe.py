"""Observer hooks: the kernel says what happened, whoever listens (metrics) counts it.

The dispatcher, outbox and scheduler call these few methods; with no listener each call is a loop
over an empty list. Metrics (`bot/metrics.py`) subscribe only when the HTTP server starts, so the
kernel never imports a metrics library and `status` / `--help` stay fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[..., None]


class Observers:
    """Named events with plain arguments; a listener that raises is logged and never breaks the caller."""

    EVENTS = ("inbound", "handled", "send", "retry", "job")

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {name: [] for name in self.EVENTS}

    def subscribe(self, event: str, listener: Listener) -> None:
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r} (one of {', '.join(self.EVENTS)})")
        self._listeners[event].append(listener)

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self._listeners[event]:
            try:
                listener(*args)
            except Exception:
                log.exception("observer failed event=%s", event)

    def inbound(self, channel: str, outcome: str) -> None:
        """A message arrived: outcome `stored` or `duplicate`."""
        self._emit("inbound", channel, outcome)

    def handled(self, channel: str, outcome: str, seconds: float) -> None:
        """A stored message went through the pipeline: the inbox's outcome and how long it took."""
        self._emit("handled", channel, outcome, seconds)

    def send(self, channel: str, outcome: str, seconds: float) -> None:
        """One provider attempt: `sent`, `delivered`, `retry`, `failed` or `refused`, and its duration."""
        self._emit("send", channel, outcome, seconds)

    def retry(self, channel: str, rate_limited: bool) -> None:
        """A send will be retried; `rate_limited` when the provider named a wait (HTTP 429 and the like)."""
        self._emit("retry", channel, rate_limited)

    def job(self, name: str, outcome: str, seconds: float) -> None:
        """A scheduled job ran: `done`, `failed` or `skipped` (already ran for its period)."""
        self._emit("job", name, outcome, seconds)


__all__ = ["Observers"]
