"""`python main.py modem`: ask the modem what is wrong, and say what to do about it in plain words."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from channels.sms.at import AtError, AtPort
from channels.sms.link import REG_STATES, ModemConfig, Opener, choose_storage, csq_to_dbm, negotiate_cnmi, open_serial

__all__ = ["REG_STATES", "Check", "csq_to_dbm", "diagnose", "render"]

_FALLBACK = ModemConfig().fallback_sweep_interval


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    value: str
    hint: str = ""


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

    async def ask_settling(command: str, expect: str) -> list[str] | AtError:
        try:  # some firmwares answer +CPIN? with no final OK
            return await at.command(command, timeout, expect, settle=0.5)
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

        pin = await ask_settling("AT+CPIN?", "+CPIN")
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

        offered = await ask("AT+CPMS=?", "+CPMS")
        choice = choose_storage(" ".join(offered)) if isinstance(offered, list) else None
        got = await ask("AT+CPMS?", "+CPMS")
        if isinstance(got, list) and got:
            parts = [p.strip().strip('"') for p in got[0].split(":", 1)[1].split(",")]
            try:
                used, total = int(parts[1]), int(parts[2])
            except (IndexError, ValueError):
                checks.append(Check("storage", choice is not None, got[0],
                                    "" if choice else "the modem reports no SMS storage: SMS may not be supported"))
            else:
                full = used >= total
                value = f"{parts[0]} {used}/{total} used" + (f", Huddle uses {choice}" if choice else "")
                checks.append(Check("storage", not full, value,
                                    "full: new texts cannot arrive; start the bot to read and delete them" if full
                                    else ""))
        else:
            checks.append(Check("storage", False, str(got), "SMS service not ready: wait for SMS DONE after boot"))

        async def cnmi(command: str) -> list[str]:
            return await at.command(command, timeout, "+CNMI")

        try:
            chosen = await negotiate_cnmi(cnmi)
        except AtError as exc:
            checks.append(Check("indications", False, str(exc), "the modem stopped answering"))
        else:
            ds = chosen.setting[3] if chosen.setting else 0
            how = {1: "pushed (+CDS)", 2: "stored (+CDSI)", 0: "none"}[ds]
            if chosen.setting is None:
                checks.append(Check("indications", False, chosen.note or "none",
                                    f"Huddle finds new texts by sweeping the storage every {_FALLBACK:.0f} s instead"))
            else:
                value = f"new messages +CMTI, delivery reports {how}"
                if chosen.note:
                    value += f" — {chosen.note}; Huddle also sweeps the storage every {_FALLBACK:.0f} s"
                checks.append(Check("indications", ds != 0, value,
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
