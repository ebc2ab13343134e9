"""SMS receive latency (+CMTI to handler) against a 5-second CMGL poller, and send capacity.

    python -m bench.sms_latency [--messages 200] [--poll-cycles 10] [--send 400]

Everything runs through the real stack: the simulated SIM7600 on a pty, pyserial-asyncio, the
AT layer, the PDU codec, the durable inbox (SQLite, fsync on) and the router. Event-driven: the
time from the simulator writing `+CMTI` to the handler being invoked, one message at a time,
read delay 0. Baseline (the predecessor's design): the same modem and app, indications off,
`AT+CMGL=4` every 5 s; messages arrive at random times over `--poll-cycles` cycles. Send
capacity: messages queued through the outbox with CMGS delay 0, parts per second until the
simulated network has them all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from bot.app import App
from bot.config_file import ConfigFile
from bot.context import Context
from bot.model import Address, Inbound, OutboundKind
from bot.router import Router
from bot.settings import CoreSettings
from channels.sms import pdu
from channels.sms.at import AtPort
from channels.sms.modem import ModemChannel, ModemConfig, open_serial
from channels.sms.simulator import SimulatedModem
from storage.sms import SmsRepo

PHONE = "+15551234567"


class Arrivals(dict[str, float]):
    """Handler invocation times by text, with an event per expected text."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[str, asyncio.Event] = {}

    def record(self, text: str) -> None:
        self[text] = time.perf_counter()
        if (event := self.waiting.get(text)) is not None:
            event.set()

    async def wait(self, text: str) -> None:
        event = self.waiting.setdefault(text, asyncio.Event())
        if text not in self:
            await event.wait()


def make_app(tmp: Path, name: str, arrivals: Arrivals) -> App:
    core = CoreSettings(database_url=str(tmp / f"{name}.db"), demo=False, console=False, http_enabled=False,
                        quiet_hours_roles=[], _env_file=None)  # type: ignore[call-arg]
    app = App(core, config=ConfigFile({}))
    router = Router("bench")

    @router.message()
    async def record(ctx: Context) -> None:
        arrivals.record(ctx.inbound.text)

    app.include_router(router)
    return app


async def event_driven(tmp: Path, n: int) -> list[float]:
    sim = SimulatedModem(read_delay=0.0)
    await sim.start()
    arrivals = Arrivals()
    app = make_app(tmp, "events", arrivals)
    app.add_channel(ModemChannel(ModemConfig(port=sim.port), SmsRepo(app.db), app.clock, simulator=sim))
    await app.start(run_scheduler=False)
    latencies = []
    try:
        for i in range(n):
            text = f"event {i}"
            start = time.perf_counter()
            sim.deliver(PHONE, text)  # writes +CMTI to the pty now
            await arrivals.wait(text)
            latencies.append(arrivals[text] - start)
    finally:
        await app.stop()
        await sim.stop()
    return latencies


async def poller(tmp: Path, n: int, cycles: int, interval: float) -> list[float]:
    """The predecessor's loop: list everything every `interval` seconds, hand over, delete."""
    sim = SimulatedModem(read_delay=0.0)
    await sim.start()
    arrivals = Arrivals()
    app = make_app(tmp, "poller", arrivals)
    await app.start(run_scheduler=False)
    reader, writer = await open_serial(sim.port, 115200)
    at = AtPort(reader, writer, lambda _u: None)
    at.start()
    for cmd in ("ATE0", "AT+CMEE=1", "AT+CMGF=0", 'AT+CPMS="ME","ME","ME"', "AT+CNMI=2,0,0,0,0"):
        await at.command(cmd)
    sent_at: dict[str, float] = {}

    async def arrive() -> None:
        rng = random.Random(7)
        times = sorted(rng.uniform(0, cycles * interval) for _ in range(n))
        t0 = time.perf_counter()
        for i, when in enumerate(times):
            await asyncio.sleep(max(0.0, t0 + when - time.perf_counter()))
            text = f"poll {i}"
            sent_at[text] = time.perf_counter()
            sim.deliver(PHONE, text)

    async def poll() -> None:
        while True:
            await asyncio.sleep(interval)
            lines = await at.command("AT+CMGL=4", 30, "+CMGL")
            for i, line in enumerate(lines):
                if line.startswith("+CMGL:"):
                    index = int(line.split(":")[1].split(",")[0])
                    message = pdu.decode_deliver(lines[i + 1])
                    await app.inbound(Inbound(Address("sms", message.sender), message.text, f"p{index}-{message.text}",
                                              app.clock.now()))
                    await at.command(f"AT+CMGD={index}")

    feeder = asyncio.create_task(arrive())
    polling = asyncio.create_task(poll())
    try:
        await feeder
        for text in list(sent_at):
            await arrivals.wait(text)
    finally:
        polling.cancel()
        feeder.cancel()
        await asyncio.gather(feeder, polling, return_exceptions=True)
        await at.close()
        await app.stop()
        await sim.stop()
    return [arrivals[t] - sent_at[t] for t in sent_at]


async def send_capacity(tmp: Path, messages: int, body: str) -> tuple[int, float]:
    sim = SimulatedModem(cmgs_delay=(0.0, 0.0))
    parts = pdu.count_parts(body) * messages
    await sim.start()
    app = make_app(tmp, f"send{len(body)}", Arrivals())
    done = asyncio.Event()
    sim.on_text.append(lambda _n, _t: done.set() if len(sim.sent) >= parts else None)
    app.add_channel(ModemChannel(ModemConfig(port=sim.port), SmsRepo(app.db), app.clock, simulator=sim))
    await app.start(run_scheduler=False)
    try:
        start = time.perf_counter()
        await asyncio.gather(*(
            app.send(Address("sms", f"+1555{i % 40:07d}"), body, kind=OutboundKind.REPLY, key=f"b{i}")
            for i in range(messages)
        ))
        await done.wait()
        elapsed = time.perf_counter() - start
    finally:
        await app.stop()
        await sim.stop()
    return parts, elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ev = await event_driven(tmp, args.messages)
        base = await poller(tmp, args.messages, args.poll_cycles, 5.0)
        single = await send_capacity(tmp, args.send, "Your order is ready. Reply STOP to opt out.")
        multi = await send_capacity(tmp, max(1, args.send // 4), "Thanks for visiting! 🎉 " * 8)
    ms = 1000.0
    print(f"{'receive latency, ms':<34}{'n':>6}{'p50':>10}{'p99':>10}{'mean':>10}")
    print(f"{'+CMTI event-driven (Huddle)':<34}{len(ev):>6}{pct(ev, .5) * ms:>10.1f}{pct(ev, .99) * ms:>10.1f}"
          f"{statistics.mean(ev) * ms:>10.1f}")
    print(f"{'CMGL poll every 5 s (baseline)':<34}{len(base):>6}{pct(base, .5) * ms:>10.1f}"
          f"{pct(base, .99) * ms:>10.1f}{statistics.mean(base) * ms:>10.1f}")
    print(f"{'mean latency ratio baseline/Huddle':<34}{statistics.mean(base) / statistics.mean(ev):>35.0f}x")
    print()
    print(f"{'send capacity, CMGS delay 0':<34}{'parts':>6}{'seconds':>10}{'parts/s':>10}")
    for label, (parts, elapsed) in (("single-part texts", single), ("3-part emoji texts", multi)):
        print(f"{label:<34}{parts:>6}{elapsed:>10.2f}{parts / elapsed:>10.0f}")
    print("(a real modem sends 6-20 parts a minute; SQLite with fsync on every commit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--poll-cycles", type=int, default=10)
    parser.add_argument("--send", type=int, default=400)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
