"""The weekly review's trend page: `GET /budtenders/trend/{token}` on the shared HTTP server.

On only when both `HUDDLE_PUBLIC_URL` (how a phone reaches this server, e.g. https://huddle.example.com)
and `HUDDLE_BUDTENDER_LINK_SECRET` are set; then each weekly review SMS ends with a signed link to
the budtender's own last four weeks. A forged or altered token gets 404 and shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr

from bot.app import App
from bot.lazy import lazy_module
from bot.settings import HuddleSettings
from coaching import budtenders as bt
from coaching.budtender_coach import BudtenderCoach
from coaching.budtender_trend import DayPoint, check_link, render, sign_link

if TYPE_CHECKING:
    from aiohttp import web
else:
    web = lazy_module("aiohttp.web")


class BudtenderLinkSettings(HuddleSettings):
    public_url: str | None = Field(None, description="base URL phones use to reach the HTTP server")
    budtender_link_secret: SecretStr | None = Field(None, description="signs the weekly trend links")


def _settings(app: App) -> BudtenderLinkSettings:
    use = getattr(app, "use_settings", None)
    return use(BudtenderLinkSettings) if use else BudtenderLinkSettings()


async def trend_page(coach: BudtenderCoach, person_id: int, week: str) -> str | None:
    person = await coach.person(person_id)
    if person is None:
        return None
    today = coach.today()
    first = today - timedelta(days=27)
    start, end = coach.day_span(first)[0], coach.day_span(today)[1]
    orders = await coach.sales.between(start, end, budtender_person_id=person_id)
    by_day = bt.by_local_day(orders, coach.tz)
    points = [DayPoint.of(first + timedelta(days=i), bt.tally(by_day.get(first + timedelta(days=i), []), coach.rules))
              for i in range(28)]
    wm = await coach.watermark(person_id)
    return render(person.name, week, points, wm.avg_ticket if wm.known else None)


def link_builder(app: App) -> Callable[[int, str], str] | None:
    """`(person_id, week_label) -> url` for the weekly review, when links are configured."""
    settings = _settings(app)
    if not settings.public_url or settings.budtender_link_secret is None:
        return None
    secret = settings.budtender_link_secret.get_secret_value()
    base = settings.public_url.rstrip("/")
    return lambda person_id, week: f"{base}/budtenders/trend/{sign_link(secret, person_id, week)}"


def setup(app: App, coach: BudtenderCoach) -> None:
    settings = _settings(app)
    if not settings.public_url or settings.budtender_link_secret is None:
        return
    secret = settings.budtender_link_secret.get_secret_value()

    async def page(request: web.Request) -> web.Response:
        found = check_link(secret, request.match_info.get("token", ""))
        if found is None:
            return web.Response(status=404, text="not found")
        html = await trend_page(coach, *found)
        if html is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "private, no-store"})

    app.http.route("GET", "/budtenders/trend/{token}", page)
