"""How `python main.py phone +1555…` reaches the simulator inside the running bot.

The bot's simulator listens on 127.0.0.1 on an ephemeral TCP port and writes the port and a
random token to a state file (mode 0600, `HUDDLE_SMS_SIM_STATE`). The `phone` command reads the
file, connects, proves it may (token) and then speaks JSON lines: it sends `{"text": ...}` for
each line the user types (the simulator delivers it to the modem as an SMS from that number,
so it goes through +CMTI, the PDU codec and the whole stack) and receives `{"text": ...}` for
every message the bot sends to that number (reassembled from its parts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from channels.sms.simulator import SimulatedModem

log = logging.getLogger(__name__)


class PhoneLink:
    def __init__(self, sim: SimulatedModem, state_file: Path) -> None:
        self.sim = sim
        self.state_file = state_file
        self.token = secrets.token_urlsafe(24)
        self.server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        data = json.dumps({"port": self.port, "token": self.token, "pid": os.getpid()})
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        log.info("SMS simulator phone link on 127.0.0.1:%s (state in %s)", self.port, self.state_file)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = None
        try:
            hello = json.loads(await asyncio.wait_for(reader.readline(), 10))
            phone = str(hello.get("phone", ""))
            if not secrets.compare_digest(str(hello.get("token", "")), self.token):
                writer.write(b'{"error": "bad token"}\n')
                return
            if not (phone.startswith("+") and phone[1:].isdigit()):
                writer.write(b'{"error": "phone must look like +15551234567"}\n')
                return
            writer.write(b'{"ok": true}\n')

            def listener(number: str, text: str) -> None:
                if number == phone:
                    writer.write((json.dumps({"text": text}) + "\n").encode())

            self.sim.on_text.append(listener)
            while line := await reader.readline():
                message: dict[str, Any] = json.loads(line)
                if text := str(message.get("text", "")):
                    self.sim.deliver(phone, text)
        except (TimeoutError, json.JSONDecodeError, ConnectionError, AttributeError):
            pass
        finally:
            if listener is not None and listener in self.sim.on_text:
                self.sim.on_text.remove(listener)
            with contextlib.suppress(Exception):
                writer.close()


async def run_phone(state_file: Path, phone: str, lines: list[str] | None = None, wait: float = 0.0) -> int:
    """Act as a phone: type lines to text the store, see its answers. `lines` scripts it."""
    try:
        state = json.loads(await asyncio.to_thread(state_file.read_text))
    except (OSError, ValueError):
        print(f"No running SMS simulator found ({state_file}). Start the bot in demo mode first: python main.py",
              file=sys.stderr)
        return 2
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(state["port"]))
    except OSError as exc:
        print(f"The SMS simulator does not answer ({exc}); is the bot still running?", file=sys.stderr)
        return 2
    writer.write((json.dumps({"token": state["token"], "phone": phone}) + "\n").encode())
    answer = json.loads(await reader.readline() or b"{}")
    if not answer.get("ok"):
        print(f"Refused: {answer.get('error', 'no answer')}", file=sys.stderr)
        return 2

    async def show() -> None:
        while line := await reader.readline():
            text = json.loads(line).get("text", "")
            print(f"\n[store → {phone}] {text}", flush=True)

    printer = asyncio.create_task(show())
    try:
        if lines is not None:
            for text in lines:
                writer.write((json.dumps({"text": text}) + "\n").encode())
            await writer.drain()
            await asyncio.sleep(wait)
        else:
            print(f"You are {phone}. Type a text and press Enter; Ctrl-D to quit.")
            while True:
                text = await asyncio.to_thread(sys.stdin.readline)
                if not text:
                    await asyncio.sleep(wait)  # piped input: stay a moment for the answers
                    break
                if text.strip():
                    writer.write((json.dumps({"text": text.rstrip("\n")}) + "\n").encode())
                    await writer.drain()
    finally:
        printer.cancel()
        writer.close()
    return 0
