"""`python main.py modem`: ask the modem what is wrong, and say what to do about it in plain words."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from channels.sms.at import AtError, AtPort
from channels.sms.link import Opener, choose_cnmi, open_serial


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    value: str
    hint: str = ""


def csq_to_dbm(rssi: int) -> tuple[int | None, int]:
    """AT+CSQ rssi (0-31, 99 unknown) as dBm and 0-4 bars."""
    if rssi == 99 or rssi < 0 or rssi > 31:
        return None, 0
    bars = 1 if rssi < 10 else 2 if rssi < 15 else 3 if rssi < 20 else 4
    return -113 + 2 * rssi, bars if rssi > 1 else 0


REG_STATES = {
    "0": ("not registered, not searching", "check that the SIM is activated and the antenna is connected"),
    "1": ("registered, home network", ""),
    "2": ("searching for a network", "wait a minute; if it stays so, check the antenna and coverage"),
    "3": ("registration denied", "the operator refuses this SIM: check the plan is active and SMS is allowed"),
    "4": ("unknown", "check the antenna and coverage"),
    "5": ("registered, roaming", ""),
}


async def diagnose(port: str, baud: int = 115200, opener: Opener = open_serial, timeout: float = 5.0) -> list[Check]:
    checks: list[Check] = []
    try:
        reader, writer = await asyncio.wait_for(opener(port, baud), timeout)
    except Exception as exc:
        hint = ("check the USB cable and the name (`ls /dev/ttyUSB*`; a SIM7600 takes AT commands on ttyUSB2); "
                "if it is busy, the bot may be running (it holds the port); permission denied: add the user to "
                "the dialout group")
        return [Check("port", False, f"{port}: {exc}", hint)]
    checks.append(Check("port", True, port))
    at = AtPort(reader, writer, lambda _u: None)
    at.start()

    async def ask(command: str, expect: str | None = None) -> list[str] | AtError:
        try:
            return await at.command(command, timeout, expect)
        except AtError as exc:
            return exc

    try:
        answer = await ask("AT")
        if isinstance(answer, AtError):
            checks.append(Check("answers AT", False, str(answer),
                                "the port opens but nobody answers: try the next ttyUSB port or HUDDLE_SMS_BAUD"))
            return checks
        checks.append(Check("answers AT", True, "OK"))
        await ask("ATE0")
        await ask("AT+CMEE=1")
        ident = []
        for cmd in ("AT+CGMI", "AT+CGMM", "AT+CGMR"):
            got = await ask(cmd)
            ident.append(" ".join(got).replace("+CGMR:", "").strip() if isinstance(got, list) else "?")
        checks.append(Check("modem", True, " / ".join(ident)))
        imei = await ask("AT+CGSN")
        checks.append(Check("IMEI", isinstance(imei, list), " ".join(imei) if isinstance(imei, list) else str(imei)))

        pin = await ask("AT+CPIN?", "+CPIN")
        pin_text = " ".join(pin).replace("+CPIN:", "").strip() if isinstance(pin, list) else str(pin)
        sim_hint = ""
        if "SIM PIN" in pin_text:
            sim_hint = "the SIM is locked: set HUDDLE_SMS_PIN"
        elif "PUK" in pin_text:
            sim_hint = "the SIM is blocked (PUK): unlock it in a phone first"
        elif not pin_text.startswith("READY"):
            sim_hint = "no usable SIM: check it is inserted the right way round, then power-cycle the modem"
        checks.append(Check("SIM", pin_text.startswith("READY"), pin_text, sim_hint))

        registered = False
        for cmd, label in (("AT+CREG?", "registration (CREG)"), ("AT+CEREG?", "LTE registration (CEREG)")):
            prefix = cmd[2:-1]
            got = await ask(cmd, prefix)
            if isinstance(got, AtError):
                checks.append(Check(label, False, str(got), "the modem did not answer this query"))
                continue
            stat = [*" ".join(got).split(","), "?"][1].strip() if got else "?"
            text, hint = REG_STATES.get(stat, (f"state {stat}", "check the antenna and the SIM"))
            ok = stat in ("1", "5")
            registered |= ok
            checks.append(Check(label, ok, text, hint))
        if registered:  # one of the two is enough: a 3G-only or LTE-only network shows one of them
            checks = [c if c.ok or (not c.name.endswith("(CREG)") and not c.name.endswith("(CEREG)"))
                      else Check(c.name, True, c.value + " (the other is registered)") for c in checks]

        got = await ask("AT+CSQ", "+CSQ")
        m = re.search(r"\+CSQ:\s*(\d+)", " ".join(got)) if isinstance(got, list) else None
        rssi = int(m.group(1)) if m else 99
        dbm, bars = csq_to_dbm(rssi)
        checks.append(Check("signal", bars >= 2, f"{dbm} dBm, {bars}/4 bars" if dbm is not None else "unknown",
                            "" if bars >= 2 else "weak or no signal: connect the LTE antenna(s) or move the modem"))

        got = await ask("AT+CSCA?", "+CSCA")
        smsc = re.search(r'"([^"]*)"', " ".join(got)) if isinstance(got, list) else None
        ok = bool(smsc and smsc.group(1))
        checks.append(Check("SMS centre", ok, smsc.group(1) if smsc and ok else "not set",
                            "" if ok else "set HUDDLE_SMS_SMSC to your operator's SMS centre number"))

        got = await ask("AT+CPMS?", "+CPMS")
        if isinstance(got, list) and got:
            parts = [p.strip().strip('"') for p in got[0].split(":", 1)[1].split(",")]
            used, total = int(parts[1]), int(parts[2])
            full = used >= total
            checks.append(Check("storage", not full, f"{parts[0]} {used}/{total} used",
                                "full: new texts cannot arrive; start the bot to read and delete them" if full else ""))
        else:
            checks.append(Check("storage", False, str(got), "SMS service not ready: wait for SMS DONE after boot"))

        got = await ask("AT+CNMI=?", "+CNMI")
        if isinstance(got, list) and got:
            _mode, _mt, _bm, ds, _bfr = choose_cnmi(" ".join(got))
            how = {1: "pushed (+CDS)", 2: "stored (+CDSI)", 0: "none"}[ds]
            checks.append(Check("indications", ds != 0, f"new messages +CMTI, delivery reports {how}",
                                "" if ds else "this modem cannot report deliveries: messages stay 'sent'"))
    finally:
        await at.close()
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{'ok ' if c.ok else 'FAIL'} {c.name.ljust(width)}  {c.value}")
        if not c.ok and c.hint:
            lines.append(f"     {' ' * width}  → {c.hint}")
    return "\n".join(lines)
