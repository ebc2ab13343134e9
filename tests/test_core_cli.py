"""`python main.py …` as an operator types it: clear output, one-line errors, exit code 2."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from channels.console import ConsoleUI
from coaching.roles import Role
from tests.flows import Flow

ROOT = Path(__file__).resolve().parents[1]


def huddle(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUDDLE_")}
    base.update({"HUDDLE_DATABASE_URL": str(tmp_path / "h.db"), "HUDDLE_DURABLE_COMMITS": "false", **env})
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = huddle(tmp_path, "--help")
    assert out.returncode == 0
    for command in ("run", "status", "send", "people", "db"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (("frobnicate",), {}, "invalid choice"),
        (("people", "add", "Ann", "--role", "wizard"), {}, "invalid choice"),
        (("status",), {"HUDDLE_HTTP_PORT": "99999"}, "HUDDLE_HTTP_PORT"),
        (("status",), {"HUDDLE_DEFAULT_TIMEZONE": "Mars/Olympus"}, "HUDDLE_DEFAULT_TIMEZONE"),
        (("status",), {"HUDDLE_CONFIG": "missing.toml"}, "missing.toml"),
        (("send", "carrier-pigeon", "x", "hi"), {}, "unknown channel"),
        (("send", "sms", "not-a-phone", "hi"), {}, "phone"),
        (("status",), {"HUDDLE_DEFAULT_REGION": "XX"}, "HUDDLE_DEFAULT_REGION"),
        (("status",), {"HUDDLE_TELEGRAM_TOKEN": "1:x", "HUDDLE_TELEGRAM_WEBHOOK_SECRET": "not allowed!"},
         "HUDDLE_TELEGRAM_WEBHOOK_SECRET"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], needle: str
) -> None:
    out = huddle(tmp_path, *args, **env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_invalid_config_file_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "huddle.toml").write_text('[[people]]\nname = "Ann"\nroles = ["sales_manager"]\ntimezon = "UTC"\n')
    out = huddle(tmp_path, "run")
    assert out.returncode == 2
    assert "people[0].timezon" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_people_send_and_status(tmp_path: Path) -> None:
    added = huddle(tmp_path, "people", "add", "Ann Lee", "--role", "sales_manager", "--telegram", "42")
    assert added.returncode == 0 and "Ann Lee" in added.stdout
    listed = huddle(tmp_path, "people", "list")
    assert "Ann Lee" in listed.stdout and "telegram:42" in listed.stdout
    sent = huddle(tmp_path, "send", "sms", "(619) 555-0100", "Your", "order", "is", "ready")
    assert sent.returncode == 0 and "+16195550100" in sent.stdout
    status = huddle(tmp_path, "status")
    assert status.returncode == 0
    assert "queued" in status.stdout and "sms" in status.stdout
    assert "console stand-in" in status.stdout


def test_db_upgrade(tmp_path: Path) -> None:
    out = huddle(tmp_path, "db", "upgrade")
    # once an area adds migrations the heads are the areas' revisions (all rooted at core_0001)
    assert out.returncode == 0 and " is at " in out.stdout and "_0001" in out.stdout


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    from bot import logs

    os.environ["HUDDLE_FAKE_TOKEN"] = "xoxb-very-secret-value"
    try:
        logs.register_secrets()
        assert (
            logs.redact("calling https://api/bot xoxb-very-secret-value/getMe") == "calling https://api/bot ***/getMe"
        )
    finally:
        del os.environ["HUDDLE_FAKE_TOKEN"]


async def test_console_acts_as_a_person_and_shows_replies() -> None:
    flow = await Flow.create(plugins=["bot.builtin"])
    try:
        await flow.person("Ann Lee", {Role.SALES_MANAGER}, telegram="42")
        out = io.StringIO()
        ui = ConsoleUI(flow.app, stdin=io.StringIO(""), stdout=out)
        flow.app.outbox.on_sent.append(ui.show)
        await ui.handle_line("/who")
        await ui.handle_line("hello")
        await ui.handle_line("/as ann")
        await ui.handle_line("/help")
        await flow.settle()
        text = out.getvalue()
        assert "Ann Lee" in text and "sales_manager" in text
        assert "Pick someone first" in text
        assert "Acting as Ann Lee on telegram" in text
        assert "── to Ann Lee [telegram 42]" in text and flow.app.hooks.contact_text(None, "telegram") in text
        await ui.handle_line("/as Nobody Matches This At All")
        assert "No one matches" in out.getvalue()
    finally:
        await flow.close()


async def test_console_asks_which_one_when_a_name_is_ambiguous() -> None:
    flow = await Flow.create(plugins=["bot.builtin"])
    try:
        await flow.person("Maria Lopez", {Role.CUSTOMER}, sms="+13235550101")
        await flow.person("Maria Ortiz", {Role.BUDTENDER}, sms="+13235550113")
        out = io.StringIO()
        ui = ConsoleUI(flow.app, stdin=io.StringIO(""), stdout=out)
        await ui.handle_line("/as maria")
        assert "2 people match" in out.getvalue() and ui.acting is None
        await ui.handle_line("/as maria ortiz")
        assert ui.acting is not None and ui.acting.name == "Maria Ortiz"
        await ui.handle_line("/as 3235550101")
        assert ui.acting.name == "Maria Lopez"
    finally:
        await flow.close()
