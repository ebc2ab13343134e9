"""Slack send throughput against the fake Slack on 127.0.0.1, compared with raw slack-sdk calls.

    python -m bench.slack_send [--messages 400]

Rows: raw `AsyncWebClient.chat_postMessage` (the baseline, one at a time and 8 at once), the
adapter's `send` (escaping, blocks, DM resolution through the cached `conversations.open`, error
mapping), and the whole path a handler uses — `app.send` → durable outbox → adapter → fake Slack —
with pacing off (pacing is a deliberate 1 msg/s per channel in production, so it would only
measure the clock). The ratio is against the raw sequential baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import SystemClock
from bot.model import Address, Button, Outbound
from channels.slack import SlackChannel, SlackSettings
from tests.fakes.slack_server import FakeSlack
from tests.flows import Flow

CONCURRENCY = 8
REPEAT = 5


async def timed(run: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def bounded(n: int, one: Callable[[int], Awaitable[object]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def go(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(go(i) for i in range(n)))


async def main(n: int) -> list[tuple[str, int, float]]:
    fake = await FakeSlack.start()
    rows: list[tuple[str, int, float]] = []
    session = aiohttp.ClientSession()
    try:
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, session=session)

        for i in range(50):  # warm up connections and imports before anything is timed
            await client.chat_postMessage(channel="C0BENCH", text=f"warm-up {i}")

        settings = SlackSettings(  # type: ignore[call-arg]
            _env_file=None, slack_bot_token=fake.bot_token, slack_signing_secret="s", slack_api_url=fake.api_url
        )
        channel = SlackChannel(settings, SystemClock())

        async def ignore(_: object) -> None:
            return None

        await channel.start(ignore, ignore)
        buttons = [Button("Maria", "pick:maria"), Button("Ajay", "pick:ajay")]

        async def raw_seq() -> None:
            for i in range(n):
                await client.chat_postMessage(channel="C0BENCH", text=f"message {i}")

        async def raw_conc() -> None:
            await bounded(n, lambda i: client.chat_postMessage(channel="C0BENCH", text=f"m {i}"))

        async def adapter_seq() -> None:
            for i in range(n):
                await channel.send(Outbound(Address("slack", "C0BENCH"), f"*KPI* {i} < 5 & rising"))

        async def adapter_dm() -> None:
            for i in range(n):
                await channel.send(Outbound(Address("slack", f"U{i % 50:04d}"), f"Briefing {i}"))

        async def adapter_conc() -> None:
            await bounded(
                n, lambda i: channel.send(Outbound(Address("slack", "C0BENCH"), f"Pick {i}", buttons=buttons))
            )

        cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("raw AsyncWebClient, sequential (baseline)", raw_seq),
            (f"raw AsyncWebClient, {CONCURRENCY} in flight", raw_conc),
            ("adapter send to a channel id, sequential", adapter_seq),
            ("adapter send to 50 users (DM, cached open), seq.", adapter_dm),
            (f"adapter send with buttons, {CONCURRENCY} in flight", adapter_conc),
        ]
        best = {name: float("inf") for name, _ in cases}
        try:
            for _ in range(REPEAT):  # interleaved, best of REPEAT: load on the machine only ever slows a run
                for name, run in cases:
                    best[name] = min(best[name], await timed(run))
        finally:
            await channel.stop()
        rows.extend((name, n, best[name]) for name, _ in cases)

        for key, value in fake.env().items():
            os.environ[key] = value
        os.environ["HUDDLE_SLACK_MODE"] = "http"
        os.environ["HUDDLE_SLACK_SIGNING_SECRET"] = "s"
        for label, plugins in (
            ("app.send → outbox → in-memory stand-in channel", []),
            ("app.send → outbox → Slack adapter → fake Slack", ["channels.slack"]),
        ):
            flow = await Flow.create(plugins=plugins)
            try:

                async def pipeline(flow: Flow = flow) -> None:
                    await asyncio.gather(
                        *(
                            flow.app.send(Address("slack", f"U{i % 50:04d}"), f"Coaching note {i}", key=f"bench:{i}")
                            for i in range(n)
                        )
                    )
                    await flow.settle()

                rows.append((f"{label}, 50 users, unpaced", n, await timed(pipeline)))
            finally:
                await flow.close()
    finally:
        await session.close()
        await fake.close()
    return rows


def report(rows: list[tuple[str, int, float]]) -> None:
    base = rows[0][1] / rows[0][2]
    print(f"{'case':66} {'msgs':>6} {'seconds':>8} {'msgs/s':>8} {'vs raw':>7}")
    for name, n, seconds in rows:
        rate = n / seconds
        print(f"{name:66} {n:6d} {seconds:8.3f} {rate:8.0f} {rate / base:7.2f}")
    print("The outbox rows include durable storage of every message (SQLite); the gap between them is the adapter.")
    print("Production pacing is 1 msg/s per channel (burst 3), so real throughput is set by Slack, not by Huddle.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    report(asyncio.run(main(args.messages)))
