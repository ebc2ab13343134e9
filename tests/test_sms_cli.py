"""The plugin wiring, `modem` diagnostics and the `phone` link to the simulator."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from bot.app import App
from bot.config_file import ConfigFile
from bot.model import Address
from bot.settings import CoreSettings
from channels.sms import plugin
from channels.sms.diagnostics import csq_to_dbm, diagnose, render
from channels.sms.modem import ModemChannel
from channels.sms.phone_link import PhoneLink, run_phone
from channels.sms.simulator import SimulatedModem
from tests.sms_support import Recorder, eventually, sms_flow

PHONE = "+15551234567"


def make_app(demo: bool) -> App:
    core = CoreSettings(database_url="unused.db", demo=demo, console=False, http_enabled=False,
                        _env_file=None)  # type: ignore[call-arg]
    return App(core, config=ConfigFile({}))


def test_plugin_real_port_demo_simulator_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUDDLE_SMS_PORT", raising=False)
    app = make_app(demo=True)
    plugin.setup(app)
    app.build_channels()  # adapters are built when the bot starts, not for every command
    channel = app.channels["sms"]
    assert isinstance(channel, ModemChannel) and channel.simulator is not None
    assert {"modem", "phone"} <= set(app.cli_commands)

    app = make_app(demo=False)
    plugin.setup(app)
    app.build_channels()
    assert "sms" not in app.channels

    monkeypatch.setenv("HUDDLE_SMS_PORT", "/dev/ttyUSB2")
    app = make_app(demo=True)
    plugin.setup(app)
    app.build_channels()
    channel = app.channels["sms"]
    assert isinstance(channel, ModemChannel) and channel.simulator is None
    assert channel.config.port == "/dev/ttyUSB2"


async def test_diagnostics_against_the_simulator() -> None:
    sim = SimulatedModem()
    port = await sim.start()
    try:
        checks = await diagnose(port)
    finally:
        await sim.stop()
    by_name = {c.name: c for c in checks}
    assert all(c.ok for c in checks), render(checks)
    assert "SIM7600" in by_name["modem"].value
    assert by_name["signal"].value == "-71 dBm, 4/4 bars"
    assert by_name["storage"].value.startswith("ME 0/")


async def test_diagnostics_hint_for_a_locked_sim() -> None:
    sim = SimulatedModem()
    sim.lock_sim("1234")
    port = await sim.start()
    try:
        checks = await diagnose(port)
    finally:
        await sim.stop()
    sim_check = next(c for c in checks if c.name == "SIM")
    assert not sim_check.ok and "HUDDLE_SMS_PIN" in sim_check.hint


async def test_diagnostics_explain_a_missing_port() -> None:
    checks = await diagnose("/nonexistent/ttyUSB9", timeout=1)
    assert not checks[0].ok
    assert "ttyUSB" in checks[0].hint
    assert "FAIL" in render(checks)


def test_signal_bars() -> None:
    assert csq_to_dbm(99) == (None, 0)
    assert csq_to_dbm(5) == (-103, 1)
    assert csq_to_dbm(31) == (-51, 4)


async def test_modem_cli_without_a_port_checks_the_simulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HUDDLE_SMS_PORT", raising=False)
    code = await plugin._run_modem(make_app(demo=True), argparse.Namespace(port=None))
    out = capsys.readouterr().out
    assert code == 0
    assert "simulated SIM7600" in out and "signal" in out


async def test_phone_texts_the_store_and_sees_the_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = SimulatedModem()
    await sim.start()
    rec = Recorder(answer=lambda t: f"Thanks, you said: {t}")
    flow, _ = await sms_flow(sim, rec)
    link = PhoneLink(sim, tmp_path / "sim.json")
    await link.start()
    try:
        assert oct((tmp_path / "sim.json").stat().st_mode & 0o777) == "0o600"
        phone = asyncio.create_task(run_phone(tmp_path / "sim.json", PHONE, ["points?"], wait=1.5))
        await eventually(lambda: rec.texts == ["points?"], what="inbound through the simulator")
        assert rec.messages[0].address == Address("sms", PHONE)
        await flow.settle()
        assert await phone == 0
        assert f"[store → {PHONE}] Thanks, you said: points?" in capsys.readouterr().out
    finally:
        await link.stop()
        await flow.close()
        await sim.stop()


async def test_phone_link_refuses_a_bad_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = SimulatedModem()
    link = PhoneLink(sim, tmp_path / "sim.json")
    await link.start()
    try:
        state = json.loads((tmp_path / "sim.json").read_text())
        (tmp_path / "forged.json").write_text(json.dumps({**state, "token": "guess"}))
        assert await run_phone(tmp_path / "forged.json", PHONE, []) == 2
        assert "bad token" in capsys.readouterr().err  # an operator's mistake: on stderr
        assert await run_phone(tmp_path / "missing.json", PHONE, []) == 2
        assert "No running SMS simulator" in capsys.readouterr().err
    finally:
        await link.stop()
