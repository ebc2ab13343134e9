"""Shared pieces of the Slack tests: a test router and a Flow wired to the fake Slack."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.context import Context
from bot.model import Button
from bot.router import Reply, Router
from coaching.roles import Role
from tests.fakes.slack_server import FakeSlack
from tests.flows import Flow

router = Router("slack-test")


@router.command("ping", roles={Role.TEAM_LEAD}, help="answers pong")
async def ping(ctx: Context) -> str:
    return "pong"


@router.command("stale", roles={Role.TEAM_LEAD}, help="echoes its days")
async def stale(ctx: Context, days: int = 3) -> str:
    return f"stale {days}"


@router.command("menu", roles={Role.TEAM_LEAD}, help="offers buttons")
async def menu(ctx: Context) -> Reply:
    return Reply("Pick one", buttons=[Button("Maria", "pick:maria"), Button("Ajay", "pick:ajay")])


@router.callback("pick:", roles={Role.TEAM_LEAD})
async def picked(ctx: Context) -> str:
    return f"picked {ctx.args}"


@router.file(roles={Role.TEAM_LEAD})
async def got_file(ctx: Context) -> str:
    f = ctx.inbound.files[0]
    if f.content is None:
        return f"couldn't read {f.name}"
    return f"got {f.name}: {len(f.content)} bytes, first line {f.content.decode().splitlines()[0]!r}"


@router.message(roles={Role.TEAM_LEAD})
async def hello(ctx: Context) -> str:
    return f"Hello {ctx.person.first_name if ctx.person else 'there'}, you said: {ctx.text}"


def slack_env(monkeypatch: pytest.MonkeyPatch, fake: FakeSlack, **extra: str) -> None:
    for key, value in {**fake.env(), "HUDDLE_SLACK_PING_INTERVAL": "3600", **extra}.items():
        monkeypatch.setenv(key, value)


async def slack_flow(**settings: Any) -> Flow:
    flow = await Flow.create(plugins=["channels.slack"], **settings)
    flow.app.include_router(router)
    return flow


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Wait for real I/O (a socket, an HTTP call) to have happened."""

    async def loop() -> None:
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), within)
