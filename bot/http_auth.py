"""Signing in to the admin pages: a session cookie from the admin token, CSRF tokens, and a brake.

The token is typed once on the sign-in form; the answer is a cookie (`HttpOnly`, `SameSite=Strict`,
`Path=/`) that says when it was issued and carries an HMAC keyed by the token itself, so changing
the token signs everyone out and nothing needs storing (a gateway and a worker accept each other's
cookies). Every form carries a CSRF token derived from the session (or, on the sign-in form, from a
short-lived pre-session cookie): a page of another site can neither read it nor post without it.

Wrong tokens are compared in constant time, and after a few failures from one client each further
try waits (doubling, capped), so guessing is slow without locking the owner out.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "huddle_admin"
PRE_COOKIE = "huddle_pre"
SESSION_SECONDS = 12 * 3600
FREE_FAILURES = 3
"""Failures from one client before each further attempt is slowed down."""
MAX_DELAY = 8.0
FAILURE_WINDOW = 900.0


def tokens_equal(given: str, expected: str | None) -> bool:
    """Constant-time comparison; no expected token means nobody gets in."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class Sessions:
    """Issues and checks session cookies and CSRF tokens, keyed by the admin token."""

    def __init__(self, token: str | None, now: Callable[[], float] = time.time, lifetime: int = SESSION_SECONDS):
        self._key = hashlib.sha256(b"huddle-admin-session\0" + token.encode()).digest() if token else None
        self.now = now
        self.lifetime = lifetime
        self._revoked: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def _mac(self, text: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        issued = int(self.now())
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._mac(f'session|{issued}|{nonce}')}"

    def check(self, value: str | None) -> str | None:
        """The session's id (its nonce) if the cookie is ours, unexpired and not signed out."""
        if not value or self._key is None:
            return None
        parts = value.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        issued, nonce, mac = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(mac, self._mac(f"session|{issued}|{nonce}")):
            return None
        if not (0 <= self.now() - issued <= self.lifetime) or nonce in self._revoked:
            return None
        return nonce

    def revoke(self, value: str | None) -> tuple[str, float] | None:
        """Sign the session out here; (its id, when its cookie would expire) for storing, if valid."""
        nonce = self.check(value)
        if nonce is None:
            return None
        self._revoked.add(nonce)
        return nonce, int(value.split(".")[0]) + self.lifetime  # type: ignore[union-attr]

    def csrf_for(self, session_id: str) -> str:
        return self._mac(f"csrf|{session_id}")

    def csrf_ok(self, session_id: str | None, given: str | None) -> bool:
        if not session_id or not given or self._key is None:
            return False
        return hmac.compare_digest(given, self.csrf_for(session_id))

    def pre_session(self) -> tuple[str, str]:
        """A (cookie, csrf) pair for the sign-in form, before anyone is signed in."""
        nonce = secrets.token_urlsafe(16)
        key = self._key or b"-"
        csrf = hmac.new(key, f"pre|{nonce}".encode(), hashlib.sha256).hexdigest()
        return nonce, csrf

    def pre_ok(self, cookie: str | None, given: str | None) -> bool:
        if not cookie or not given:
            return False
        key = self._key or b"-"
        expected = hmac.new(key, f"pre|{cookie}".encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(given, expected)


@dataclass
class _Tries:
    failures: int = 0
    last: float = 0.0


@dataclass
class FailureBrake:
    """Slows down a client after repeated wrong tokens: 1 s, 2 s, 4 s … up to `MAX_DELAY` per try."""

    free: int = FREE_FAILURES
    max_delay: float = MAX_DELAY
    window: float = FAILURE_WINDOW
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] = asyncio.sleep
    _clients: dict[str, _Tries] = field(default_factory=dict)

    def delay_for(self, client: str) -> float:
        tries = self._clients.get(client)
        if tries is None or self.now() - tries.last > self.window:
            return 0.0
        over = tries.failures - self.free
        return 0.0 if over < 0 else min(self.max_delay, 2.0**over)

    async def wait(self, client: str) -> float:
        delay = self.delay_for(client)
        if delay:
            await self.sleep(delay)  # type: ignore[misc]
        return delay

    def failed(self, client: str) -> None:
        tries = self._clients.get(client)
        if tries is None or self.now() - tries.last > self.window:
            tries = self._clients[client] = _Tries()
        tries.failures += 1
        tries.last = self.now()
        if len(self._clients) > 10_000:  # a flood of addresses: forget the oldest
            oldest = sorted(self._clients.items(), key=lambda kv: kv[1].last)[:5_000]
            for key, _ in oldest:
                self._clients.pop(key, None)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)


__all__ = ["PRE_COOKIE", "SESSION_COOKIE", "FailureBrake", "Sessions", "tokens_equal"]
