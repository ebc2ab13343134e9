"""Core plugin: built-in commands (help) and CLI commands (status, send, people, db)."""

from __future__ import annotations

from bot.app import App


def setup(app: App) -> None:
    return None
