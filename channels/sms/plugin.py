"""SMS plugin: the modem channel (real port or, in demo mode, the simulator) and its CLI commands.

With `HUDDLE_SMS_PORT` set, the channel drives that modem. Without it, in demo mode, a simulated
SIM7600 runs on a pseudo-terminal inside the bot and the very same stack talks to it; `python
main.py phone +15551234567` then texts the store through it from another terminal.

`python main.py status` shows how many raw PDUs are held (not texts, or unreadable) and the last
reasons; `python main.py sms held` lists them with their hex.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from pydantic import Field, SecretStr

from bot.app import App
from bot.settings import HuddleSettings
from channels.sms.diagnostics import diagnose, render
from channels.sms.modem import ModemChannel, ModemConfig
from channels.sms.phone_link import PhoneLink, run_phone
from channels.sms.simulator import SimulatedModem
from storage.sms import DELIVERED, HELD, HeldPdu, SmsRepo


class SmsSettings(HuddleSettings):
    sms_port: str | None = Field(None, description="modem AT port, e.g. /dev/ttyUSB2; unset: simulator in demo mode")
    sms_baud: int = 115200
    sms_pin: SecretStr | None = Field(None, description="SIM PIN, if the SIM is locked")
    sms_smsc: str | None = Field(None, description="SMS centre number, if the SIM does not carry one")
    sms_max_parts: int = Field(10, ge=1, le=255, description="longer texts are refused, never truncated")
    sms_reassembly_timeout: float = Field(600.0, gt=0, description="seconds before a partial long text is delivered")
    sms_sweep_interval: float = Field(300.0, gt=0, description="seconds between safety sweeps of the modem storage")
    sms_send_silence: float = Field(20.0, gt=0, description="seconds of modem silence in a send before it is hung")
    sms_simulator: bool = Field(True, description="in demo mode without a port, run the simulated modem")
    sms_sim_cmgs_delay: tuple[float, float] = Field((2.0, 4.0), description="simulated send time range, seconds")
    sms_sim_state: Path = Field(Path(".huddle-sms-sim.json"), description="where the simulator tells `phone` its port")


def modem_config(s: SmsSettings) -> ModemConfig:
    return ModemConfig(
        port=s.sms_port,
        baud=s.sms_baud,
        pin=s.sms_pin.get_secret_value() if s.sms_pin else None,
        smsc=s.sms_smsc,
        max_parts=s.sms_max_parts,
        reassembly_timeout=s.sms_reassembly_timeout,
        sweep_interval=s.sms_sweep_interval,
        send_silence=s.sms_send_silence,
    )


def setup(app: App) -> None:
    settings = app.use_settings(SmsSettings)
    config = modem_config(settings)
    store = SmsRepo(app.db)
    app.add_cli("modem", "check the SMS modem: SIM, network, signal, storage", _configure_modem, _run_modem,
                needs_db=False)
    app.add_cli("phone", "act as a phone texting the store through the SMS simulator", _configure_phone, _run_phone,
                needs_db=False)
    app.add_cli("sms", "SMS records: `sms held` lists raw PDUs kept because they were not texts", _configure_sms,
                _run_sms)
    app.add_status(_status)
    if settings.sms_port:
        app.add_channel(ModemChannel(config, store, app.clock))
        return
    if not (app.settings.demo and settings.sms_simulator):
        return
    sim = SimulatedModem(cmgs_delay=settings.sms_sim_cmgs_delay, report_delay=1.0)
    channel = ModemChannel(config, store, app.clock, simulator=sim)
    link = PhoneLink(sim, settings.sms_sim_state)

    async def start_simulator(app: App) -> None:
        config.port = await sim.start()
        await link.start()

    async def stop_simulator(app: App) -> None:
        await link.stop()
        await sim.stop()

    app.on_startup(start_simulator)
    app.on_shutdown(stop_simulator)
    app.add_channel(channel)
    app.provide("sms_simulator", sim)


def _configure_modem(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", help="AT port (default: HUDDLE_SMS_PORT; none: the simulator)")


async def _run_modem(app: App, args: argparse.Namespace) -> int:
    settings = SmsSettings()
    port = args.port or settings.sms_port
    sim = None
    if not port:
        print("HUDDLE_SMS_PORT is not set: checking the built-in simulated SIM7600 instead.")
        sim = SimulatedModem()
        port = await sim.start()
    try:
        checks = await diagnose(port, settings.sms_baud)
    finally:
        if sim is not None:
            await sim.stop()
    print(render(checks))
    return 0 if all(c.ok for c in checks) else 1


def _configure_phone(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the phone number you pretend to be, e.g. +15551234567")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for answers after the input ends")


async def _run_phone(app: App, args: argparse.Namespace) -> int:
    return await run_phone(SmsSettings().sms_sim_state, args.number, wait=args.wait)


# -- status and `sms held` ---------------------------------------------------------------------------


async def _status(app: App) -> list[str]:
    repo = SmsRepo(app.db)
    counts = await repo.held_counts()
    held = counts.get(HELD, 0)
    lines = [f"SMS raw PDUs held (not texts, or unreadable): {held}"
             + (" — `python main.py sms held` lists them" if held else "")]
    for row in await repo.held(limit=5):
        lines.append(f"  {_when(row.received_at)} {_slot(row):<7} {row.reason}")
    if lenient := counts.get(DELIVERED, 0):
        lines.append(f"SMS texts delivered with what could be read (raw PDU kept): {lenient}")
    return lines


def _configure_sms(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sms_command", metavar="WHAT", required=True)
    held = sub.add_parser("held", help="raw PDUs kept because they were not texts (newest first)")
    held.add_argument("--all", action="store_true", help="also texts delivered leniently, with their raw PDU")
    held.add_argument("--limit", type=int, default=50, help="how many (default 50)")


async def _run_sms(app: App, args: argparse.Namespace) -> int:
    rows = await SmsRepo(app.db).held(limit=max(1, args.limit), outcome=None if args.all else HELD)
    if not rows:
        print("No raw SMS PDUs held." if not args.all else "No raw SMS PDUs kept.")
        return 0
    for row in rows:
        print(_describe(row))
    return 0


def _describe(row: HeldPdu) -> str:
    head = f"#{row.id} {_when(row.received_at)} slot {_slot(row)} {row.outcome}: {row.reason}"
    lines = [head]
    if row.sender:
        lines.append(f"    from {row.sender}")
    if row.text:
        preview = " ".join(row.text.split())
        lines.append(f"    text {preview[:120]!r}{'…' if len(preview) > 120 else ''}")
    lines.append(f"    hex  {row.pdu}")
    return "\n".join(lines)


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def _slot(row: HeldPdu) -> str:
    return f"{row.storage}:{row.slot}" if row.slot is not None else "pushed"
