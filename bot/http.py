"""The shared HTTP server (aiohttp): health, webhooks and admin routes of every plugin.

Routes are added before start. `admin` routes take `Authorization: Bearer <HUDDLE_ADMIN_TOKEN>`
(compared in constant time) or the session cookie the admin sign-in page gives (`bot/http_auth.py`);
a page asked for without either is redirected to the sign-in form, anything else answers 401. The
token is never read from a URL (it would land in logs and browser history). Without a configured
token admin routes answer 401, never open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.http_auth import SESSION_COOKIE, FailureBrake, Sessions, tokens_equal
from bot.lazy import lazy_module
from channels.base import health_of

if TYPE_CHECKING:
    from aiohttp import web

    from bot.http_site import ReservedSite
    from bot.settings import CoreSettings
else:
    web = lazy_module("aiohttp.web")

log = logging.getLogger(__name__)

RouteHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]
M = TypeVar("M", bound=BaseModel)

SIGN_IN_PATH = "/admin/login"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestError(Exception):
    """A request the client can fix: answered `status` with `{"error": reason, "reasons": [...]}`."""

    def __init__(self, reason: str, status: int = 400, reasons: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.reasons = reasons or []


def error_response(reason: str, status: int = 400, reasons: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": reason}
    if reasons:
        body["reasons"] = reasons
    return web.json_response(body, status=status)


def _reasons(exc: ValidationError, where: str) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or where
        out.append(f"{where} {loc}: {err['msg']}" if loc != where else f"{where}: {err['msg']}")
    return out


async def validated(request: web.Request, model: type[M], *, query: bool = True) -> M:
    """The request's input as `model`: a JSON body (strict types) and/or query parameters.

    No body (or an empty one) means the model's documented defaults. A body that is not JSON,
    has a wrong type or an unknown field, or a bad or unknown query parameter, raises
    RequestError(400) with every reason, so the caller starts nothing.
    """
    raw = await request.read()
    reasons: list[str] = []
    given: dict[str, Any] = {}
    if query:
        params = dict(request.query.items())
        if len(params) != len(request.query):
            reasons.append("query: a parameter is given more than once")
        try:
            given.update(model.model_validate(params).model_dump(exclude_unset=True))
        except ValidationError as exc:
            reasons += _reasons(exc, "query")
    if raw.strip():
        try:
            given.update(model.model_validate_json(raw, strict=True).model_dump(exclude_unset=True))
        except ValidationError as exc:
            reasons += _reasons(exc, "body")
    if reasons:
        raise RequestError("invalid request: " + "; ".join(reasons)[:500], 400, reasons[:20])
    return model.model_validate(given)


async def api_errors(request: web.Request, handler: RouteHandler) -> web.StreamResponse:
    """Under /api/, every error is JSON with a reason, and a bug is a logged 500, never a traceback page."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except RequestError as exc:
        return error_response(exc.reason, exc.status, exc.reasons)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.reason or "error", exc.status)
    except Exception:
        log.exception("API handler failed path=%s", request.path)
        return error_response("internal error (logged)", 500)


def bearer_ok(request: web.Request, token: str | None) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time (never a query parameter)."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and tokens_equal(given.strip(), token)


async def csrf_given(request: web.Request) -> str | None:
    """The CSRF token of an unsafe request: the `X-CSRF-Token` header or a form's `csrf` field."""
    header = request.headers.get("X-CSRF-Token")
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get("csrf")
        return value if isinstance(value, str) else None
    return None


class HttpServer:
    def __init__(self, settings: CoreSettings) -> None:
        self.settings = settings
        self._app: web.Application | None = None
        self._routes: list[tuple[str, str, RouteHandler]] = [("GET", "/healthz", self._health)]
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.health_checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        """Extra named checks a plugin adds (True = fine)."""
        self.channels: Mapping[str, object] = {}
        """The app's channels: each reports through `health_of` (the App points this at its own)."""
        self._site: ReservedSite | None = None
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.sessions = Sessions(token)
        """Admin sign-in sessions (cookies keyed by the admin token)."""
        self.signed_out: Callable[[str], Awaitable[bool]] | None = None
        """Whether a session was signed out in any process (the admin plugin stores sign-outs)."""
        self.brake = FailureBrake()
        """Slows down clients that keep sending wrong tokens."""
        self.before_start: list[Callable[[], None]] = []
        """Called once just before the server starts serving (e.g. metrics, imported only then)."""

    @property
    def web(self) -> web.Application:
        """The aiohttp application, built (and aiohttp imported) only when something needs it."""
        if self._app is None:
            self._app = web.Application(client_max_size=1024**2 * 2, middlewares=[web.middleware(api_errors)])
            for method, path, handler in self._routes:
                self._app.router.add_route(method, path, handler)
        return self._app

    def route(self, method: str, path: str, handler: RouteHandler, *, admin: bool = False) -> None:
        if admin:
            handler = self.require_admin(handler)
        if self._app is None:
            self._routes.append((method, path, handler))
        else:
            self._app.router.add_route(method, path, handler)

    def client_of(self, request: web.Request) -> str:
        return request.remote or "-"

    async def admin_check(self, request: web.Request, *extra_tokens: str | None) -> str | None:
        """How the request is signed in ("bearer" or "session"), or None; wrong tokens are braked."""
        token = self.settings.admin_token.get_secret_value() if self.settings.admin_token else None
        if request.headers.get("Authorization"):
            client = self.client_of(request)
            await self.brake.wait(client)
            if bearer_ok(request, token) or any(bearer_ok(request, t) for t in extra_tokens if t):
                self.brake.succeeded(client)
                return "bearer"
            self.brake.failed(client)
            return None
        session = await self.live_session(request)
        if session is None:
            return None
        if request.method in UNSAFE_METHODS and not self.sessions.csrf_ok(session, await csrf_given(request)):
            return None
        return "session"

    async def live_session(self, request: web.Request) -> str | None:
        """The session id of the request's cookie if it is valid and not signed out anywhere."""
        session = self.sessions.check(request.cookies.get(SESSION_COOKIE))
        if session is not None and self.signed_out is not None and await self.signed_out(session):
            return None
        return session

    def session_of(self, request: web.Request) -> str | None:
        """The admin session id of a signed-in browser (None for bearer callers and strangers)."""
        return self.sessions.check(request.cookies.get(SESSION_COOKIE))

    def refuse(self, request: web.Request) -> web.StreamResponse:
        """A page is redirected to the sign-in form; anything else (API, forms, feeds) gets 401."""
        wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "")
        if wants_page and not request.path.startswith("/api/") and self.sessions.enabled:
            from urllib.parse import quote

            raise web.HTTPSeeOther(f"{SIGN_IN_PATH}?next={quote(request.path_qs, safe='/')}")
        return web.json_response(
            {"error": "unauthorized: sign in at /admin or send Authorization: Bearer <HUDDLE_ADMIN_TOKEN>"},
            status=401,
        )

    def require_admin(self, handler: RouteHandler) -> RouteHandler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if await self.admin_check(request) is None:
                return self.refuse(request)
            return await handler(request)

        return guarded

    async def _health(self, _request: web.Request) -> web.Response:
        """Every channel's live state and every extra check; 503 as soon as one configured part is down."""
        channels: dict[str, dict[str, Any]] = {}
        for name, channel in sorted(self.channels.items()):
            try:
                health = await health_of(channel)
                channels[name] = {"up": bool(health.up), **health.detail}
            except Exception as exc:
                log.exception("health probe failed channel=%s", name)
                channels[name] = {"up": False, "error": f"health probe failed: {type(exc).__name__}"}
        checks = {}
        for name, check in self.health_checks.items():
            try:
                checks[name] = bool(await check())
            except Exception:
                checks[name] = False
        ok = all(c["up"] for c in channels.values()) and all(checks.values())
        body = {"ok": ok, "channels": channels, "checks": checks}
        return web.json_response(body, status=200 if ok else 503, dumps=_dumps)

    async def bind(self, host: str | None = None, port: int | None = None) -> int:
        """Take the port now, serve later (`start`): a busy port fails before anything else starts.

        Raises OSError (e.g. EADDRINUSE) as `loop.create_server` does; the app turns it into one line.
        """
        if self._site is not None:
            return self.port or 0
        self.runner = web.AppRunner(self.web, access_log=None)
        await self.runner.setup()
        from bot.http_site import ReservedSite

        site = ReservedSite(self.runner, host or self.settings.http_host,
                            self.settings.http_port if port is None else port)
        try:
            await site.bind()
        except BaseException:
            await self.runner.cleanup()
            self.runner = None
            raise
        self._site = site
        self.port = site.port
        return self.port

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        hooks, self.before_start = self.before_start, []
        for hook in hooks:
            hook()
        await self.bind(host, port)
        assert self._site is not None
        await self._site.start()
        log.info("http listening host=%s port=%s", host or self.settings.http_host, self.port)
        return self.port or 0

    async def stop(self) -> None:
        site, self._site = self._site, None
        if site is not None and not site.started:
            site.close()  # bound but never served (start-up failed later)
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
