"""The owner's and COO's view: sign-in, people and their timelines, live health, the Monday report.

Pages on Huddle's own HTTP server under /admin (`handlers/admin_web.py`), the weekly report
(`handlers/weekly_report.py`), and `/metrics` (the kernel's, `bot/metrics.py`). Everything needs
HUDDLE_ADMIN_TOKEN: typed once at /admin/login, it becomes a session cookie.
"""

from __future__ import annotations

from bot.app import App
from bot.plugins import Plugin
from handlers import weekly_report
from handlers.admin_web import AdminPages, add_routes


def setup(app: App) -> None:
    pages = app.provide("admin_pages", AdminPages(app))
    app.http.signed_out = pages.signed_out  # a sign-out holds in every process, not only this one
    add_routes(app, pages)
    weekly_report.setup(app, pages)


plugin = Plugin("admin", setup, requires=("store",), description="admin pages, health, metrics and the Monday report")
