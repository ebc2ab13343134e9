"""AT command transport: one command in flight at a time over an asyncio stream pair.

A single reader task owns the stream. It splits the modem's output into lines, completes the
command in flight on its final result (OK, ERROR, +CME ERROR, +CMS ERROR), answers the CMGS `> `
prompt, and hands unsolicited result codes (+CMTI, +CDS, RDY, ...) to a callback, even when they
arrive in the middle of a command's response. A line that looks like a URC but is the answer the
command asked for (`+CPIN: READY` after `AT+CPIN?`) stays with the command.

Real modems interleave vendor codes with answers (Huawei `^RSSI:` inside a `+CMGR` answer, seen in
python-gsmmodem issue #40; ZTE `+ZPASR:`, Quectel `+QIND:`): while a command that expects a given
prefix is in flight, any other `+X:`/`^X:` line is treated as unsolicited, never as its answer.
Some firmwares end `AT+CPIN?` without a final OK (python-gsmmodem's Wavecom profile): a command
may `settle` on its expected line instead of waiting for a result that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

URC_PREFIXES = (
    "+CMTI:", "+CDSI:", "+CDS:", "+CMT:", "+CBM:", "RDY", "+CPIN:", "SMS DONE", "PB DONE", "RING",
    "+CREG:", "+CEREG:", "+CGREG:", "NO CARRIER", "+CLIP:", "+CRING:", "+CFUN:", "+STIN:", "+CGEV:",
    "+CNSMOD:", "+SIMCARD:", "+CPSI:", "START", "*ATREADY:", "+RECEIVE",
    # vendors (ModemManager's Huawei, ZTE and Quectel plugins list these as unsolicited)
    "^RSSI:", "^MODE:", "^BOOT:", "^DSFLOWRPT:", "^SRVST:", "^SIMST:", "^STIN:", "^CSNR:", "^HCSQ:",
    "^RSSILVL:", "^HRSSILVL:", "^SYSINFOEX:", "^NDISSTAT:", "^CEND:", "^ORIG:", "^CONF:", "^CONN:",
    "^SMMEMFULL:", "+ZPASR:", "+ZUSIMR:", "+ZDONR:", "+ZPSTM:", "+ZEND", "+CIEV:", "+QIND:", "+QUSIM:",
    "+CUSD:", "+CTZV:", "+CTZE:", "+CTZU:", "*PSUTTZ:", "DST:", "+CSQN:", "+CMGRMI:", "+PACSP",
)
TWO_LINE_URCS = ("+CDS:", "+CMT:", "+CBM:")
"""URCs whose PDU follows on the next line (PDU mode)."""

_FINAL_OK = {"OK"}
_FINAL_ERR = {"ERROR", "NO CARRIER", "NO DIALTONE", "BUSY", "NO ANSWER", "COMMAND NOT SUPPORT"}
_ERR_RE = re.compile(r"^\+(CME|CMS) ERROR:\s*(.*)$")
_VENDOR_RE = re.compile(r"^[+^*$#%][A-Z][A-Z0-9_]*[:=]?", re.IGNORECASE)
"""`+ZPASR: ...`, `^MODE:5`, `$QCSIMSTAT: ...`: the shape of an unsolicited code nobody listed."""
_HEX_RE = re.compile(r"^[0-9A-Fa-f]+$")


def is_hex(line: str) -> bool:
    return bool(_HEX_RE.match(line))

CMS_TEXT_CODES = {
    "unknown error": 500, "sim busy": 515, "sim not inserted": 310, "sim pin required": 311,
    "invalid pdu mode parameter": 304, "invalid text mode parameter": 305, "memory full": 322,
    "invalid memory index": 321, "sms service of me reserved": 302, "operation not allowed": 302,
    "no network service": 331, "network timeout": 332, "invalid pdu mode": 304,
}


class AtError(Exception):
    """A command ended in an error result."""

    def __init__(self, command: str, message: str, code: int | None = None) -> None:
        super().__init__(f"{command}: {message}")
        self.command = command
        self.message = message
        self.code = code


class CmeError(AtError):
    """+CME ERROR: equipment (SIM, PIN, network registration) errors."""


class CmsError(AtError):
    """+CMS ERROR: SMS service errors; see `channels.sms.modem.classify_cms`."""


class AtTimeout(AtError):
    """The modem did not finish the command in time (it hangs, or the link is gone)."""


class AtHung(AtTimeout):
    """The modem said nothing at all for too long in the middle of a command (a hung send)."""


class PortClosed(AtError):
    """The stream ended or failed; the port has to be reopened."""


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited result code: `name` like "+CMTI", `args` after the colon, `pdu` if two-line."""

    name: str
    args: str
    pdu: str | None = None

    @property
    def line(self) -> str:
        return f"{self.name}: {self.args}" if self.args else self.name


def parse_urc(line: str, pdu: str | None = None) -> Urc:
    name, sep, args = line.partition(":")
    return Urc(name.strip(), args.strip() if sep else "", pdu)


def _error_code(text: str, table: dict[str, int] | None = None) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return (table or {}).get(text.lower())


class _Pending:
    def __init__(self, command: str, expect: str | None, settle: float | None = None) -> None:
        self.command = command
        self.expect = expect
        self.settle = settle
        self.lines: list[str] = []
        self.done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self.prompt: asyncio.Event = asyncio.Event()
        self.timer: asyncio.TimerHandle | None = None


class AtPort:
    """The AT conversation over one opened port (reader/writer from pyserial-asyncio)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_urc: Callable[[Urc], None],
        on_close: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.on_urc = on_urc
        self.on_close = on_close
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._two_line: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._two_line_waited = 0
        self.closed = False
        self.close_reason: BaseException | None = None
        self.last_rx = time.monotonic()
        """When the modem last said anything (monotonic seconds): silence means a hang."""
        self.strays: list[str] = []
        """The last lines that arrived with no command in flight (late answers after a timeout)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_loop(), name="at-reader")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        self._mark_closed(None)
        with contextlib.suppress(Exception):
            self.writer.close()

    # -- commands ------------------------------------------------------------------------------

    async def command(
        self, command: str, timeout: float = 5.0, expect: str | None = None, settle: float | None = None
    ) -> list[str]:
        """Send `command` and return its information lines; raise a typed error otherwise.

        `expect` is the response prefix this command produces (e.g. "+CPIN") when that prefix
        could also arrive unsolicited. With `settle`, the expected line is answer enough: if no
        final result follows within `settle` seconds, the command completes without one.
        """
        async with self._lock:
            pending = self._begin(command, expect, settle)
            try:
                await self._write(command + "\r")
                return await self._wait(pending, timeout)
            finally:
                self._pending = None

    async def send_pdu(
        self, tpdu_length: int, pdu_hex: str, timeout: float = 60.0, silence: float | None = None
    ) -> list[str]:
        """`AT+CMGS=<length>`, wait for `> `, write the PDU and Ctrl-Z, wait for `+CMGS: <mr>`.

        `timeout` is the ceiling for the network's answer; `silence` ends the wait earlier when the
        modem has said nothing at all (not even an unsolicited code) for that long: a hung modem.
        """
        command = f"AT+CMGS={tpdu_length}"
        async with self._lock:
            pending = self._begin(command, "+CMGS")
            try:
                await self._write(command + "\r")
                prompt = asyncio.ensure_future(pending.prompt.wait())
                try:
                    await asyncio.wait(
                        {prompt, pending.done}, timeout=min(timeout, 10.0, silence or 10.0),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    prompt.cancel()
                if pending.done.done():
                    return pending.done.result()  # an error instead of a prompt: raises
                if not pending.prompt.is_set():
                    await self._write("\x1b")  # cancel the half-entered command
                    raise AtTimeout(command, "no '>' prompt")
                await self._write(pdu_hex + "\x1a")
                if silence is None:
                    return await self._wait(pending, timeout)
                return await self._wait_unless_silent(pending, timeout, silence)
            finally:
                self._pending = None

    async def _wait_unless_silent(self, pending: _Pending, timeout: float, silence: float) -> list[str]:
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        deadline = loop.time() + timeout
        while True:
            quiet_since = max(self.last_rx, start)
            left = min(deadline - loop.time(), quiet_since + silence - time.monotonic())
            if left <= 0:
                if loop.time() >= deadline:
                    raise AtTimeout(pending.command, f"no answer in {timeout:g} s")
                raise AtHung(pending.command, f"modem silent for {silence:g} s")
            done, _ = await asyncio.wait({pending.done}, timeout=left)
            if done:
                return pending.done.result()

    async def write(self, data: str) -> None:
        """Write raw characters (ESC to leave a half-entered PDU)."""
        await self._write(data)

    def _begin(self, command: str, expect: str | None, settle: float | None = None) -> _Pending:
        if self.closed:
            raise PortClosed(command, "port closed")
        self._pending = _Pending(command, expect, settle)
        return self._pending

    async def _write(self, data: str) -> None:
        try:
            self.writer.write(data.encode("ascii"))
            await self.writer.drain()
        except Exception as exc:
            self._mark_closed(exc)
            raise PortClosed("write", str(exc)) from exc

    async def _wait(self, pending: _Pending, timeout: float) -> list[str]:
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), timeout)
        except TimeoutError:
            raise AtTimeout(pending.command, f"no answer in {timeout:g} s") from None

    # -- reading -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        buffer = ""
        error: BaseException | None = None
        try:
            while True:
                chunk = await self.reader.read(4096)
                if not chunk:
                    error = PortClosed("read", "end of stream")
                    break
                self.last_rx = time.monotonic()
                buffer += chunk.decode("ascii", "replace")
                buffer = self._consume(buffer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # serial.SerialException, OSError when the device vanishes
            error = exc
        finally:
            self._mark_closed(error)

    def _consume(self, buffer: str) -> str:
        while True:
            idx = min((i for i in (buffer.find("\r"), buffer.find("\n")) if i >= 0), default=-1)
            if idx < 0:
                break
            line, buffer = buffer[:idx].strip(), buffer[idx + 1 :]
            if line:
                self._line(line)
        stripped = buffer.lstrip()
        if stripped.startswith(">") and self._pending is not None:
            self._pending.prompt.set()
            return ""
        return buffer

    def _line(self, line: str) -> None:
        pending = self._pending
        if self._two_line is not None:
            if is_hex(line):
                head, self._two_line = self._two_line, None
                self._dispatch(parse_urc(head, line))
                return
            if self._is_urc(line, pending) and self._two_line_waited < 2:
                self._two_line_waited += 1  # a vendor code slipped between a +CDS and its PDU
                self._dispatch(parse_urc(line))
                return
            head, self._two_line = self._two_line, None
            log.warning("modem announced %r but the next line is not a PDU: %r", head, line[:80])
            self._dispatch(parse_urc(head))
        if pending is not None and pending.expect and line.startswith(pending.expect):
            pending.lines.append(line)
            if pending.settle is not None and pending.timer is None:
                pending.timer = asyncio.get_running_loop().call_later(pending.settle, self._settled, pending)
            return
        if line.startswith(TWO_LINE_URCS):
            self._two_line = line
            self._two_line_waited = 0
            return
        if pending is None:
            if self._is_urc(line, None):
                self._dispatch(parse_urc(line))
            else:
                log.debug("modem said %r with no command in flight", line)
                self.strays = [*self.strays[-9:], line]
            return
        if line == ">":
            pending.prompt.set()
            return
        if line == pending.command or line.upper().startswith("AT"):
            return  # echo (before ATE0 took effect, or a modem that keeps it on)
        if line in _FINAL_OK:
            self._finish(pending, result=pending.lines)
        elif line in _FINAL_ERR:
            self._finish(pending, error=AtError(pending.command, line))
        elif m := _ERR_RE.match(line):
            kind, text = m.groups()
            if kind == "CMS":
                self._finish(pending, error=CmsError(pending.command, line, _error_code(text, CMS_TEXT_CODES)))
            else:
                self._finish(pending, error=CmeError(pending.command, line, _error_code(text)))
        elif self._is_urc(line, pending):
            self._dispatch(parse_urc(line))
        else:
            pending.lines.append(line)

    @staticmethod
    def _is_urc(line: str, pending: _Pending | None) -> bool:
        """A known unsolicited code, or (while a command waits for its own prefix) any other code."""
        if line.startswith(URC_PREFIXES):
            return True
        if pending is not None and pending.expect is None:
            return False  # a command without a known prefix: its own lines may look like anything
        return bool(_VENDOR_RE.match(line)) and not is_hex(line)

    def _settled(self, pending: _Pending) -> None:
        if not pending.done.done():
            log.info("modem gave no final result for %s; taking %r as the answer", pending.command, pending.lines)
            self._finish(pending, result=pending.lines)

    def _finish(self, pending: _Pending, result: list[str] | None = None, error: AtError | None = None) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.done.done():
            return
        if error is not None:
            pending.done.set_exception(error)
            pending.done.exception()  # mark retrieved: a timed-out waiter may be gone
        else:
            pending.done.set_result(result or [])

    def _dispatch(self, urc: Urc) -> None:
        try:
            self.on_urc(urc)
        except Exception:
            log.exception("URC handler failed urc=%r", urc.line)

    def _mark_closed(self, error: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = error
        if self._pending is not None and not self._pending.done.done():
            self._pending.done.set_exception(PortClosed(self._pending.command, str(error or "closed")))
            self._pending.done.exception()
        if self.on_close is not None:
            try:
                self.on_close(error)
            except Exception:
                log.exception("on_close failed")
