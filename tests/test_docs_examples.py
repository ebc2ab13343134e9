"""The how-tos' examples run: a channel and an audience written only against the public API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.model import Address
from channels.base import health_of
from tests.flows import Flow


async def _eventually(predicate, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_file_channel_carries_a_conversation(tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    flow = await Flow.create(plugins=["bot.builtin", "docs.examples.file_channel", "docs.examples.volunteers"],
                             file_channel_inbox=inbox, file_channel_outbox=outbox, file_channel_poll=0.01)
    try:
        rota = flow.app.deps["rota"]
        vic = await flow.person("Vic", {"volunteer"}, file="vic")
        rota.shifts[vic.id] = ["Sat 10:00 gate", "Sun 14:00 bar"]
        inbox.write_text(json.dumps({"from": "Vic", "text": "shifts 1"}) + "\nnot json\n")
        await _eventually(lambda: outbox.exists() and outbox.read_text().count("\n") >= 1)
        await flow.settle()
        [sent] = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert sent == {"to": "vic", "text": "Your next shifts: Sat 10:00 gate"}  # "Vic" written as the policy says
        health = await health_of(flow.app.channels["file"])
        assert not health.up and "unreadable line" in health.detail["last_error"]
        assert flow.app.channel_summaries()["file"].startswith("files ")
    finally:
        await flow.close()


async def test_the_volunteer_audience_answers_on_any_channel() -> None:
    flow = await Flow.create(plugins=["bot.builtin", "docs.examples.volunteers"])
    try:
        rota = flow.app.deps["rota"]
        vic = await flow.person("Vic", {"volunteer"}, telegram="500", sms="+16195550188")
        rota.shifts[vic.id] = ["Sat 10:00 gate"]
        assert await flow.send(vic, "/shifts", channel="telegram") == ["Your next shifts: Sat 10:00 gate"]
        assert await flow.send(vic, "SHIFTS 0", channel="sms") == ["COUNT is at least 1. Usage: SHIFTS [COUNT]"]
        assert (await flow.send(vic, "can someone cover saturday?", channel="telegram"))[0].startswith(
            "Noted: you'd like to cover Sat"
        )
        [listed] = await flow.send(vic, "/help", channel="telegram")
        assert "/shifts [COUNT] — your next shifts" in listed
        stranger = Address("telegram", "501")
        assert "shifts" not in " ".join(await flow.send(stranger, "/shifts"))
    finally:
        await flow.close()


async def test_the_audience_howto_snippet_as_written() -> None:
    from bot.testing import Flow as PlainFlow

    flow = await PlainFlow.create(plugins=["channels.telegram", "bot.builtin", "docs.examples.volunteers"])
    try:
        vic = await flow.person("Vic", {"volunteer"}, telegram="500")
        flow.app.deps["rota"].shifts[vic.id] = ["Sat 10:00 gate"]
        assert await flow.send(vic, "/shifts") == ["Your next shifts: Sat 10:00 gate"]
    finally:
        await flow.close()
