"""`python main.py …` as an operator types it: clear output, one-line errors, exit code 2."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.context import Context
from bot.model import Button
from bot.router import Reply, Router
from channels.console import ConsoleUI
from coaching.roles import Role
from tests.flows import Flow

ROOT = Path(__file__).resolve().parents[1]


def huddle(tmp_path: Path, *args: str, stdin: int | None = subprocess.DEVNULL, **env: str
           ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUDDLE_")}
    base.update({"HUDDLE_DATABASE_URL": str(tmp_path / "h.db"), "HUDDLE_DURABLE_COMMITS": "false",
                 "HUDDLE_HTTP_PORT": "0", **env})
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        cwd=tmp_path,
        env=base,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_exit_2(out: subprocess.CompletedProcess[str], needle: str) -> str:
    """The operator's contract: exit code 2, exactly one line on stderr, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    return lines[0]


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    """tmp_path/h.db, an existing Huddle database (commands other than run/db upgrade need one)."""
    from bot.testing import migrated_sqlite

    made = Path(asyncio.run(migrated_sqlite(tmp_path)))
    return made.rename(tmp_path / "h.db")


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
        # invite without a role (and its other mistakes)
        (("invite",), {}, "say which role"),
        (("invite", "sales_manager", "--timezone", "Mars/Olympus"), {}, "unknown timezone"),
        (("invite", "sales_manager", "--person-id", "999"), {}, "no person #999"),
        (("invite", "--revoke", "99"), {}, "no unused invite #99"),
        # an unreadable CSV for ingest: missing, a directory, empty, binary, not an Inflow export
        (("ingest", "missing.csv"), {}, "can't read missing.csv"),
        (("ingest", "."), {}, "Is a directory"),
        (("ingest", "empty.csv"), {}, "empty"),
        (("ingest", "photo.csv"), {}, "isn't a CSV"),
        (("ingest", "weather.csv"), {}, "weather.csv"),
        (("dashboard", "--out", "no/such/dir/d.html"), {}, "can't write"),
        (("import", "customers", "missing.csv"), {}, "missing.csv"),
        # a database URL that is not one
        (("status",), {"HUDDLE_DATABASE_URL": "postgresql://u@db:port/huddle"}, "HUDDLE_DATABASE_URL"),
        (("status",), {"HUDDLE_DEFAULT_REGION": "XX"}, "HUDDLE_DEFAULT_REGION"),
        (("status",), {"HUDDLE_TELEGRAM_TOKEN": "1:x", "HUDDLE_TELEGRAM_WEBHOOK_SECRET": "not allowed!"},
         "HUDDLE_TELEGRAM_WEBHOOK_SECRET"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, migrated: Path, args: tuple[str, ...], env: dict[str, str], needle: str
) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "photo.csv").write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d49484452") + os.urandom(2000))
    (tmp_path / "weather.csv").write_text("City,Temp\nParis,12\nOslo,-3\n")
    one_line_exit_2(huddle(tmp_path, *args, **env), needle)


def test_a_mistyped_sqlite_path_is_reported_not_created(tmp_path: Path, migrated: Path) -> None:
    """`status` (and every command but run / db upgrade) on a file that is not there creates nothing."""
    typo = tmp_path / "data" / "hudle.db"
    for args in (("status",), ("people", "add", "Ann", "--role", "admin"), ("invite", "sales_manager")):
        line = one_line_exit_2(huddle(tmp_path, *args, HUDDLE_DATABASE_URL=str(typo)), "no such file")
        assert "hudle.db" in line and "db upgrade" in line
    assert not typo.exists() and not typo.parent.exists()
    for where, needle in ((str(tmp_path), "is a directory"), ("sqlite:///" + str(tmp_path / "notes.txt"),
                                                             "file is not a database")):
        (tmp_path / "notes.txt").write_text("shopping list: milk, eggs\n" * 50)
        one_line_exit_2(huddle(tmp_path, "status", HUDDLE_DATABASE_URL=where), needle)
    assert (tmp_path / "notes.txt").read_text().startswith("shopping list")


def test_someone_elses_sqlite_database_is_not_migrated_by_status(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
    one_line_exit_2(huddle(tmp_path, "status", HUDDLE_DATABASE_URL=str(other)), "Huddle's tables are not there")
    with sqlite3.connect(other) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"contacts"}


def test_a_database_from_a_newer_huddle_is_one_line(tmp_path: Path, migrated: Path) -> None:
    """Someone ran a newer version on this file (a revision this code does not know)."""
    import sqlite3

    with sqlite3.connect(migrated) as conn:
        conn.execute("INSERT INTO alembic_version (version_num) VALUES ('future_0009')")
    for args in (("status",), ("run",)):
        line = one_line_exit_2(huddle(tmp_path, *args), "set up by a newer Huddle")
        assert "future_0009" in line


def test_an_unreachable_or_mistyped_postgres_url_is_one_line(tmp_path: Path) -> None:
    """A host that does not resolve (RFC 6761 reserves .invalid), a refused port, and — when a
    test server is configured — a database name with a typo."""
    cases = [("postgresql://postgres@db.invalid:5432/huddle", "does not resolve"),
             ("postgresql://postgres@127.0.0.1:1/huddle", "connection refused")]
    admin = os.environ.get("HUDDLE_TEST_DATABASE_URL")
    if admin:
        from sqlalchemy.engine import make_url

        typo = make_url(admin).set(database="huddle_no_such_db_xq")
        cases.append((typo.render_as_string(hide_password=False), 'database "huddle_no_such_db_xq" does not exist'))
    for n, (url, needle) in enumerate(cases):
        for args in (("status",), ("db", "upgrade"), ("run",)) if n == 0 else (("status",),):
            line = one_line_exit_2(huddle(tmp_path, *args, HUDDLE_DATABASE_URL=url), needle)
            assert line.startswith("huddle: database postgresql://")


def test_a_busy_http_port_is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = huddle(tmp_path, "run", HUDDLE_HTTP_PORT=str(port))
    line = one_line_exit_2(out, f"HTTP port 127.0.0.1:{port} is in use")
    assert "HUDDLE_HTTP_PORT" in line
    assert not (tmp_path / "h.db").exists()  # the port is taken before the database is touched


def test_invalid_config_file_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "huddle.toml").write_text('[[people]]\nname = "Ann"\nroles = ["sales_manager"]\ntimezon = "UTC"\n')
    out = huddle(tmp_path, "run")
    assert out.returncode == 2
    assert "people[0].timezon" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_people_send_and_status(tmp_path: Path) -> None:
    created = huddle(tmp_path, "db", "upgrade")
    assert created.returncode == 0, created.stderr
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


async def test_console_shows_buttons_as_numbers_and_a_number_presses_the_button() -> None:
    """What Telegram shows as buttons the console shows as numbered choices; "2" presses the second,
    for a reply and for a proactive message alike."""
    demo = Router("demo")

    @demo.command("pick", roles={Role.SALES_MANAGER})
    async def pick(ctx: Context) -> Reply:
        return Reply("Which deal?", [Button("Acme", "deal:acme"), Button("Globex", "deal:globex")])

    @demo.callback("deal:", roles={Role.SALES_MANAGER})
    async def chosen(ctx: Context) -> str:
        return f"Opening {ctx.args}."

    flow = await Flow.create(plugins=["bot.builtin", "channels.console"])
    try:
        flow.app.include_router(demo)
        ann = await flow.person("Ann Lee", {Role.SALES_MANAGER}, telegram="42")
        out = io.StringIO()
        ui = ConsoleUI(flow.app, stdin=io.StringIO(""), stdout=out)
        flow.app.outbox.on_sent.append(ui.show)
        await ui.handle_line("/as Ann")
        await ui.handle_line("pick")
        await flow.settle()
        assert "Which deal?\n\n1. Acme\n2. Globex\nReply with a number." in out.getvalue()
        await ui.handle_line("2")
        await flow.settle()
        assert "Opening globex." in out.getvalue()
        await flow.app.send(ann.addresses[0], "Deal went quiet.", buttons=[Button("Details", "deal:acme")],
                            person=ann, key="proactive-1")
        await flow.settle()
        assert "Deal went quiet.\n\n1. Details\nReply with a number." in out.getvalue()
        await ui.handle_line("1")
        await flow.settle()
        assert out.getvalue().rstrip().endswith("Opening acme.")
        await ui.handle_line("1")  # the choice was used: a number alone is just text again
        await flow.settle()
        assert "Opening acme." not in out.getvalue().rstrip().splitlines()[-1]
    finally:
        await flow.close()


@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_gateway_and_worker_refuse_sqlite_in_one_line(tmp_path: Path, role: str) -> None:
    line = one_line_exit_2(huddle(tmp_path, role), "needs PostgreSQL")
    assert "python main.py run" in line
    assert not (tmp_path / "h.db").exists()  # refused before anything was opened or created
