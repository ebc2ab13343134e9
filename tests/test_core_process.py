"""`python main.py` as a person runs it: in a terminal, stopped with /quit or Ctrl-C, or by a
service manager with SIGTERM whatever stdin is. Each ends within 2 s, without a traceback.

The terminal is a real pseudo-terminal that is the process's controlling terminal, so Ctrl-C is
the byte 0x03 typed into it and the line discipline turns it into SIGINT, as for a person.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STOP_WITHIN = 2.0
START_WITHIN = 180.0  # a cold start on a busy shared machine (imports, migrations, demo seed)


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUDDLE_", "OPENAI_"))}
    env.update(HUDDLE_DATABASE_URL=str(tmp / "demo.db"), HUDDLE_DURABLE_COMMITS="false", HUDDLE_HTTP_PORT="0")
    # A stop waits for the modem to confirm the SMS it is sending (the simulator takes 2–4 s, as a
    # real one does; tests/test_outbox_stop.py covers that wait). Here the console's stop is timed.
    env["HUDDLE_SMS_SIM_CMGS_DELAY"] = "[0.05, 0.2]"
    return env


def _take_terminal() -> None:  # in the child: a session of its own whose controlling tty is the pty
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`python main.py` on a pseudo-terminal: type into it, read what it shows."""

    def __init__(self, tmp: Path) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py")], stdin=slave, stdout=slave, stderr=slave,
            cwd=tmp, env=_env(tmp), preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.seen = ""

    def read_until(self, needle: str, timeout: float) -> str:
        """Everything shown until `needle` appears (after what was already read)."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while needle not in self.seen[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not shown within {timeout} s; screen:\n{self.seen[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"exited before {needle!r}; screen:\n{self.seen[-3000:]}")
                self.seen += chunk.decode("utf-8", errors="replace")
        return self.seen[start:]

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_exit(self, timeout: float) -> tuple[int | None, float]:
        started = time.monotonic()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        self.drain()
        return code, took

    def drain(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                return
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo database for the module (seeded by the first start)."""
    return tmp_path_factory.mktemp("process")


@pytest.fixture
def terminal(home: Path) -> Iterator[Terminal]:
    term = Terminal(home)
    try:
        term.read_until("/quit.", START_WITHIN)  # the console's banner: it waits for input now
        term.read_until("huddle running", START_WITHIN)
        yield term
    finally:
        term.close()


def test_buttons_are_numbered_choices_and_the_number_presses_it_then_quit(terminal: Terminal) -> None:
    """The demo shows what Telegram shows: "Detailed analysis" is choice 1, and typing 1 opens it."""
    terminal.type("/as 100001\r")
    terminal.read_until("Acting as Alex Morgan on telegram", 30)
    terminal.type("/analyze 5001\r")
    shown = terminal.read_until("Reply with a number.", 60)
    assert "DEAL ANALYSIS #5001" in shown and "\n1. Detailed analysis" in shown.replace("\r\n", "\n")
    terminal.type("1\r")
    detailed = terminal.read_until("ACTION PLAN", 60)
    assert "ASSESSMENT" in detailed and "I didn't understand" not in detailed
    terminal.type("/quit\r")
    code, took = terminal.wait_exit(10)
    assert code == 0 and took < STOP_WITHIN, (code, took, terminal.seen[-2000:])
    assert "Traceback" not in terminal.seen


def test_ctrl_c_while_the_console_waits_for_input(terminal: Terminal) -> None:
    terminal.type("/as Ma")  # half a line typed, no Enter: the console is waiting
    time.sleep(0.3)
    terminal.type("\x03")  # Ctrl-C, through the terminal's line discipline
    code, took = terminal.wait_exit(10)
    assert code == 0 and took < STOP_WITHIN, (code, took, terminal.seen[-2000:])
    assert "stopping" in terminal.seen and "Traceback" not in terminal.seen
    assert "KeyboardInterrupt" not in terminal.seen


def test_ctrl_d_ends_the_console_and_the_process(terminal: Terminal) -> None:
    terminal.type("\x04")  # end of input at the start of a line
    code, took = terminal.wait_exit(10)
    assert code == 0 and took < STOP_WITHIN, (code, took, terminal.seen[-2000:])
    assert "Traceback" not in terminal.seen


def test_ctrl_c_during_start_up_stops_without_a_traceback(home: Path) -> None:
    term = Terminal(home)
    try:
        term.read_until("channel started", START_WITHIN)  # start() is under way
        term.type("\x03")
        code, took = term.wait_exit(10)
        assert code in (0, 130) and took < STOP_WITHIN, (code, took, term.seen[-2000:])
        assert "Traceback" not in term.seen
    finally:
        term.close()


@pytest.mark.parametrize("stdin", ["open pipe", "devnull"])
def test_sigterm_stops_within_2_s_whatever_stdin_is(home: Path, stdin: str) -> None:
    """A service manager's stop: stdin an open pipe that never closes, or /dev/null (issue 17)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py")], cwd=home, env=_env(home),
        stdin=subprocess.PIPE if stdin == "open pipe" else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        log = ""
        deadline = time.monotonic() + START_WITHIN
        assert proc.stderr is not None
        while "huddle running" not in log:
            assert time.monotonic() < deadline and proc.poll() is None, log[-3000:]
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                log += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        log += proc.stderr.read().decode(errors="replace")
        assert code == 0 and took < STOP_WITHIN, (code, took, log[-2000:])
        assert "console off: stdin is not a terminal" in log and "stopped" in log
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdin:
            proc.stdin.close()


async def test_a_stop_during_a_slow_start_cancels_the_start_and_undoes_it() -> None:
    """A start-up that hangs (a modem that never answers, say) still stops at once on Ctrl-C."""
    import asyncio

    from bot.app import App
    from bot.cli import serve
    from bot.clock import FakeClock
    from bot.config_file import ConfigFile
    from bot.settings import CoreSettings
    from bot.testing import FakeChannel, migrated_sqlite

    url = await migrated_sqlite(Path(__import__("tempfile").mkdtemp(prefix="huddle-serve-")))
    core = CoreSettings(database_url=url, durable_commits=False, demo=False, console=False,
                        http_port=0, _env_file=None)  # type: ignore[call-arg]
    app = App(core, clock=FakeClock(), config=ConfigFile({}))
    first, stopped = FakeChannel("sms"), []

    class Hanging(FakeChannel):
        async def start(self, on_inbound: object, on_delivery: object) -> None:
            started.set()
            await asyncio.Event().wait()

    async def stop_first() -> None:
        stopped.append("sms")

    first.stop = stop_first  # type: ignore[method-assign]
    started = asyncio.Event()
    app.add_channel(first)
    app.add_channel(Hanging("telegram"))
    running = asyncio.create_task(serve(app))
    await asyncio.wait_for(started.wait(), 30)
    assert app.http.port  # the HTTP port was taken first
    app.request_stop()
    assert await asyncio.wait_for(running, STOP_WITHIN) == 0
    assert stopped == ["sms"] and app.http.runner is None  # the channel that had started is stopped again
