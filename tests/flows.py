"""The conversation harness with this project's channels declared (SMS, Slack, Telegram, console).

`bot.testing.Flow` knows no channel of its own; these tests talk through the project's real
channel policies (E.164 phone numbers, `/stale` on Telegram, `STALE` by SMS), each with a fake
adapter unless a test configures the real one against a fake provider server.
"""

from __future__ import annotations

from typing import Any

from bot.plugins import Plugin
from bot.testing import FakeChannel, migrated_sqlite, test_database_url
from bot.testing import Flow as _Flow
from channels.console import ConsolePolicy


def _console_policy(app: Any) -> None:
    app.declare_channel(ConsolePolicy())


CONSOLE_POLICY = Plugin("console_policy", _console_policy)
CHANNELS: list[str | Plugin] = ["channels.sms.plugin", "channels.slack", "channels.telegram", CONSOLE_POLICY]
ROLES_PLUGIN = Plugin("all_roles", lambda app: _declare_all(app))


def _declare_all(app: Any) -> None:
    from coaching.roles import SPECS

    for spec in SPECS.values():
        if spec.name not in app.roles:
            app.declare_role(spec)


class Flow(_Flow):
    @classmethod
    async def create(cls, *, channels: Any = None, plugins: Any = (), **kwargs: Any) -> Flow:  # type: ignore[override]
        """Like `bot.testing.Flow.create`, with the project's channels and every audience's role declared.

        The SMS simulator stays off (demo data or not): texts go to a fake channel unless a test
        drives the simulator itself.
        """
        kwargs.setdefault("sms_simulator", False)
        if channels is None:
            # the console plugin declares its own policy (and stands in for the rest)
            channels = [c for c in CHANNELS if "channels.console" not in plugins or c is not CONSOLE_POLICY]
        return await super().create(channels=channels, plugins=[*plugins, ROLES_PLUGIN], **kwargs)  # type: ignore[return-value]


__all__ = ["CHANNELS", "FakeChannel", "Flow", "migrated_sqlite", "test_database_url"]
