"""Placeholder for the weekly trend page (filled in below)."""

from __future__ import annotations

from bot.app import App
from coaching.budtender_coach import BudtenderCoach


def setup(app: App, coach: BudtenderCoach) -> None:
    return None
