"""The owner's and COO's pages on Huddle's own HTTP server: sign-in, people and timelines, health.

Server-rendered Jinja2 templates from `handlers/admin_templates/` (autoescaped), one CSS block and
one small script of our own (`/admin/live.js`, the few-seconds poll that refreshes a page's live
parts): no CDN, no external fonts or scripts, no build step. Every page but the sign-in form needs
the session cookie (or the bearer token); every form carries the session's CSRF token.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.app import App
from bot.http_auth import PRE_COOKIE, SESSION_COOKIE, tokens_equal
from bot.lazy import lazy_module

if TYPE_CHECKING:
    import jinja2
    from aiohttp import web

    from storage.admin_signouts import SignoutRepo
    from storage.ops import OpsRepo
    from storage.timeline import TimelineRepo
else:
    web = lazy_module("aiohttp.web")

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("admin_templates")
PAGE_SIZE = 50
LABELS = {"in": "Received", "out": "Sent", "coaching": "Coaching", "handoff": "Handoff", "points": "Points",
          "order": "POS order"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTES = {"closed": "Handed back to the bot."}


def _env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True)


def _age(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h {s % 3600 // 60}m"


def _safe_next(value: str | None) -> str:
    """Only our own admin paths (no open redirect to another site)."""
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin/people"


class AdminPages:
    def __init__(self, app: App) -> None:
        self.app = app
        self._timeline: TimelineRepo | None = None
        self._ops: OpsRepo | None = None
        self._signouts: SignoutRepo | None = None
        self._jinja: jinja2.Environment | None = None

    @property
    def timeline(self) -> TimelineRepo:
        """Queries over most tables, imported when a page is first served (not for every command)."""
        if self._timeline is None:
            from storage.timeline import TimelineRepo

            self._timeline = TimelineRepo(self.app.db)
        return self._timeline

    @property
    def signouts(self) -> SignoutRepo:
        if self._signouts is None:
            from storage.admin_signouts import SignoutRepo

            self._signouts = SignoutRepo(self.app.db)
        return self._signouts

    async def signed_out(self, session_id: str) -> bool:
        return await self.signouts.signed_out(session_id)

    @property
    def ops(self) -> OpsRepo:
        if self._ops is None:
            from storage.ops import OpsRepo

            self._ops = OpsRepo(self.app.db)
        return self._ops

    @property
    def jinja(self) -> jinja2.Environment:
        if self._jinja is None:
            self._jinja = _env()
        return self._jinja

    def render(self, name: str, request: web.Request | None = None, *, status: int = 200,
               **values: Any) -> web.Response:
        session = self.app.http.session_of(request) if request is not None else None
        values.setdefault("signed_in", session is not None or values.get("signed_in", False))
        values.setdefault("csrf", self.app.http.sessions.csrf_for(session) if session else "")
        values.setdefault("deployment", self.app.hooks.title())
        html = self.jinja.get_template(name).render(**values)
        return web.Response(text=html, content_type="text/html", status=status, headers=SECURITY_HEADERS)

    def fragment(self, name: str, **values: Any) -> web.Response:
        html = self.jinja.get_template(name).render(**values)
        return web.Response(text=html, content_type="text/html", headers=SECURITY_HEADERS)

    # -- signing in ----------------------------------------------------------------------------

    async def login_form(self, request: web.Request, error: str = "", status: int = 200) -> web.Response:
        sessions = self.app.http.sessions
        if await self.app.http.live_session(request) and not error:
            raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
        pre, csrf = sessions.pre_session()
        next_ = request.query.get("next", "") if request.method == "GET" else ""
        response = self.render("login.html", None, status=status, csrf=csrf, error=error, next=_safe_next(next_),
                               enabled=sessions.enabled, signed_in=False)
        response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="Strict", path="/admin", max_age=3600)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        http = self.app.http
        client = http.client_of(request)
        if not http.sessions.pre_ok(request.cookies.get(PRE_COOKIE), _str(form.get("csrf"))):
            return await self.login_form(request, "The form expired. Please sign in again.", 403)
        await http.brake.wait(client)
        token = self.app.settings.admin_token.get_secret_value() if self.app.settings.admin_token else None
        if not tokens_equal(_str(form.get("token")), token):
            http.brake.failed(client)
            log.warning("admin sign-in refused client=%s", client)
            return await self.login_form(request, "That token is not right.", 401)
        http.brake.succeeded(client)
        response = web.HTTPSeeOther(_safe_next(_str(form.get("next"))))
        response.set_cookie(SESSION_COOKIE, http.sessions.issue(), httponly=True, samesite="Strict", path="/",
                            max_age=http.sessions.lifetime, secure=request.secure)
        response.del_cookie(PRE_COOKIE, path="/admin")
        log.info("admin signed in client=%s", client)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        revoked = self.app.http.sessions.revoke(request.cookies.get(SESSION_COOKIE))
        if revoked is not None:
            session_id, until = revoked
            now = self.app.http.sessions.now()  # the cookie's own clock (wall time), not the app's
            await self.signouts.add(session_id, datetime.fromtimestamp(until, UTC), datetime.fromtimestamp(now, UTC))
            log.info("admin signed out client=%s", self.app.http.client_of(request))
        response = web.HTTPSeeOther("/admin/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/admin/people")

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(text=(TEMPLATES / "live.js").read_text(encoding="utf-8"),
                            content_type="application/javascript", headers=SECURITY_HEADERS)

    # -- people --------------------------------------------------------------------------------

    async def people(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").strip()[:100]
        found = await self.timeline.search(q) if q else []
        return self.render("people.html", request, section="people", q=q, found=found)

    async def budtenders(self, request: web.Request) -> web.Response:
        """The outside budtenders who sell the house brand, with their points, and the latest receipts."""
        from coaching.roles import Role
        from storage.budtender_network import BudtenderNetworkRepo
        from storage.receipts import ReceiptRepo

        q = request.query.get("q", "").strip()[:100]
        dispensary = request.query.get("dispensary", "").strip()[:100]
        found = await BudtenderNetworkRepo(self.app.db, Role.EXTERNAL_BUDTENDER).list(
            dispensary=dispensary or None, search=q or None, limit=500)
        recent = await ReceiptRepo(self.app.db).list(limit=20)
        names = {b.person_id: b.name for b in found}
        for r in recent:
            if r.budtender_person_id is not None and r.budtender_person_id not in names:
                person = await self.app.people.get(r.budtender_person_id)
                names[r.budtender_person_id] = person.name if person else f"#{r.budtender_person_id}"
        return self.render("budtenders.html", request, section="budtenders", q=q, dispensary=dispensary,
                           found=found, recent=recent, names=names)

    async def person(self, request: web.Request) -> web.Response:
        person_id = _int(request.match_info["person_id"])
        person = await self.app.people.get(person_id) if person_id else None
        if person is None:
            raise web.HTTPNotFound(text="no such person")
        from storage.timeline import Cursor

        before = Cursor.decode(request.query.get("before"))
        page = await self.timeline.page(person_id, before, PAGE_SIZE)
        consent = await self.timeline.consent(person_id)
        handoffs = await self.timeline.open_handoffs(person_id)
        points = await self.timeline.points_balance(person_id)
        note = NOTES.get(request.query.get("note", ""), "") or request.query.get("said", "")[:300]
        return self.render("person.html", request, section="people", person=person, entries=page.entries,
                           next=page.next.encode() if page.next else None, before=before, consent=consent,
                           handoffs=handoffs, labels=LABELS, note=note, points=points,
                           nonce=secrets.token_urlsafe(8))

    async def person_timeline(self, request: web.Request) -> web.Response:
        """The first page of the timeline as a fragment (the page's poll swaps it in)."""
        person_id = _int(request.match_info["person_id"])
        page = await self.timeline.page(person_id, None, PAGE_SIZE)
        return self.fragment("_timeline.html", entries=page.entries, labels=LABELS)

    async def reply(self, request: web.Request) -> web.StreamResponse:
        from handlers.customers import answer_handoff
        from handlers.store_services import services

        person_id, handoff_id = _int(request.match_info["person_id"]), _int(request.match_info["handoff_id"])
        form = await request.post()
        nonce = _str(form.get("nonce"))[:40] or secrets.token_urlsafe(8)
        said, _ = await answer_handoff(self.app, services(self.app), handoff_id, _str(form.get("text"))[:1000],
                                       "Staff", key=f"admin:{handoff_id}:{nonce}")
        log.info("admin answered handoff=%s outcome=%s", handoff_id, said)
        raise web.HTTPSeeOther(f"/admin/people/{person_id}?said={quote(said)}")

    async def close(self, request: web.Request) -> web.StreamResponse:
        from handlers.customers import close_handoff
        from handlers.store_services import services

        person_id, handoff_id = _int(request.match_info["person_id"]), _int(request.match_info["handoff_id"])
        said = await close_handoff(self.app, services(self.app), handoff_id, "admin:web")
        raise web.HTTPSeeOther(f"/admin/people/{person_id}?said={quote(said)}")

    # -- health --------------------------------------------------------------------------------

    async def health_values(self) -> dict[str, Any]:
        from channels.base import health_of

        app = self.app
        now = app.clock.now()
        summaries = app.channel_summaries()
        channels = []
        for name, channel in sorted(app.channels.items()):
            try:
                h = await health_of(channel)
                up, detail = h.up, dict(h.detail)
            except Exception as exc:
                log.exception("health probe failed channel=%s", name)
                up, detail = False, {"error": f"health probe failed: {type(exc).__name__}"}
            channels.append({"name": name, "up": up, "detail": detail, "summary": summaries.get(name, "")})
        depths = await self.ops.depths()
        runs = await self.ops.last_runs()
        jobs = []
        for job in app.scheduler.jobs.values():
            nxt = job.trigger.get_next_fire_time(None, now)
            nxt = nxt.astimezone(UTC) if nxt is not None else None
            jobs.append({"id": job.id, "last": runs.get((job.name, job.scope)), "next": nxt})
        return {
            "now": now, "channels": channels, "outbox": depths.outbox, "inbox": depths.inbox,
            "oldest": depths.oldest_unsent,
            "ages": {ch: _age((now - at).total_seconds()) for ch, at in depths.oldest_unsent.items()},
            "held_count": depths.held, "held": await self.ops.held_recent(10),
            "failures": await self.ops.failures_since(now - timedelta(hours=1)),
            "jobs": sorted(jobs, key=lambda j: j["id"]),
        }

    async def health(self, request: web.Request) -> web.Response:
        return self.render("health.html", request, section="health", **await self.health_values())

    async def health_live(self, request: web.Request) -> web.Response:
        return self.fragment("_health.html", **await self.health_values())


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() and len(text) < 12 else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def add_routes(app: App, pages: AdminPages) -> None:
    http = app.http
    http.route("GET", "/admin/login", pages.login_form)
    http.route("POST", "/admin/login", pages.login)
    http.route("POST", "/admin/logout", pages.logout, admin=True)
    http.route("GET", "/admin", pages.home, admin=True)
    http.route("GET", "/admin/live.js", pages.script, admin=True)
    http.route("GET", "/admin/people", pages.people, admin=True)
    http.route("GET", "/admin/budtenders", pages.budtenders, admin=True)
    http.route("GET", "/admin/people/{person_id}", pages.person, admin=True)
    http.route("GET", "/admin/people/{person_id}/timeline", pages.person_timeline, admin=True)
    http.route("POST", "/admin/people/{person_id}/handoffs/{handoff_id}/reply", pages.reply, admin=True)
    http.route("POST", "/admin/people/{person_id}/handoffs/{handoff_id}/close", pages.close, admin=True)
    http.route("GET", "/admin/health", pages.health, admin=True)
    http.route("GET", "/admin/health/live", pages.health_live, admin=True)


__all__ = ["AdminPages", "add_routes"]

