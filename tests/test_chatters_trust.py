"""Issue 11, team leads: numbers a team lead can trust, tried from their side.

A CSV goes in as a Slack upload (the Flow harness, and once through the real Slack adapter and a
fake Slack Web API); the reply and the stored rows are checked.

Material nobody here wrote:
* the German export shape (a preamble of `Key:;value;` lines, semicolons, `dd.mm.yyyy`, `1.785,00`)
  and its amounts come from the ING and Deutsche Bank sample exports of the RechnungsFee project
  (github.com/nicolettas-muggelbude/RechnungsFee, docs/testdaten/ing-test.csv,
  vorlagen/bank-csv/deutsche-bank.csv);
* percentages and currency as CLDR writes them per locale (babel.numbers), e.g. `12,5 %` with a
  no-break space and `1 234,50 €` with a narrow no-break space in fr-FR;
* the Hubstaff Time & Activity export columns (Date, Member, Client, Project, Task, Notes, Time in
  h:mm:ss, Activity %, Idle time), as described by Hubstaff-export readers such as hourtab.com's FAQ
  ("Hubstaff exports h:mm:ss by default"); one row per member, day and project.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import format_currency, format_percent

from bot.model import Address, InboundFile, Person, Role
from bot.testing import Flow, migrated_sqlite
from coaching.demo_chatters import synthetic_days
from handlers.store import services
from storage.chatters import EXPORT, HUBSTAFF, ChatterRepo, DayMetrics
from tests.fakes.slack_server import FakeSlack, dm
from tests.slack_support import eventually, slack_env
from tests.test_chatters_dashboard import _fresh_artifact

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # Monday 07:00 in Madrid; exports cover Sunday 22 Nov
DAY = date(2026, 11, 22)
ROSTER = ["Ana Ruiz", "Adedeji Oyeniran", "Bea Costa", "Carlos Mendes", "Dara Okafor", "Elif Yilmaz",
          "Femi Adeyemi", "Grace Tan"]
CONFIG = {
    "chatters": {
        "teams": [{"name": "Team North", "chatters": ROSTER}, {"name": "Team South", "chatters": ["Sol Reyes"]}],
        "leads": [{"slack": "U0TL0001", "teams": ["Team North"], "timezone": "Europe/Madrid", "shift_start": "10:00",
                   "days": ["mon", "tue", "wed", "thu", "fri"]}],
    }
}
PLUGINS = ["handlers.enrollment", "handlers.team_leads"]
NBSP = "\u00a0"

# Shaped like a German Excel/online-banking export (see the module docstring), with Inflow columns.
EUROPEAN = (
    "Inflow Export;;\n;;\nZeitraum:;22.11.2026;\n;;\n"
    "Name;Datum;Umsatz (€);CVR;Unlock Rate;Golden Ratio;Msg/hr;Reply Time;Fans;PPVs Sent;PPVs Unlocked;Hours\n"
    f"Ana Ruiz;22.11.2026;1.785,00;0,125;12,5{NBSP}%;25{NBSP}%;48,5;1m 30s;120;80;32;8\n"
    f"Bea Costa;22.11.2026;892,50;0,08;30{NBSP}%;20{NBSP}%;30;95;90;50;15;7,5\n"
    f"Carlos Mendes;22.11.2026;2.688,15;0,11;33{NBSP}%;24{NBSP}%;44;70;1.100;70;25;0,5\n"
    f"Dara Okafor;22.11.2026;98,00;0,05;10{NBSP}%;5{NBSP}%;20;2m;40;20;4;6\n"
)


def upload(text: str, name: str = "inflow-2026-11-22.csv", encoding: str = "utf-8") -> InboundFile:
    data = text.encode(encoding)
    return InboundFile(name=name, mimetype="text/csv", size=len(data), content=data)


@pytest.fixture
async def flow() -> AsyncIterator[Flow]:
    f = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START)
    try:
        yield f
    finally:
        await f.close()


async def lead(flow: Flow) -> Person:
    return await flow.person("Ezekiel Mensah", {Role.TEAM_LEAD}, slack="U0TL0001")


def repo_of(flow: Flow) -> ChatterRepo:
    return flow.app.deps["chatters"].repo


async def stored(flow: Flow, day: date = DAY) -> dict[str, DayMetrics]:
    repo = repo_of(flow)
    names = {c.id: c.name for c in await repo.chatters()}
    return {names[m.chatter_id]: m for m in await repo.days(day, day)}


# -- decimal commas ------------------------------------------------------------------------------


async def test_a_european_export_is_read_with_decimal_commas(flow: Flow) -> None:
    tl = await lead(flow)
    reply = (await flow.send(tl, "", files=[upload(EUROPEAN)]))[-1]
    assert reply.startswith("Got the export for Sun 22 Nov: 4 chatters saved.")
    assert "Read with decimal commas" in reply
    rows = await stored(flow)
    ana, bea, carlos = rows["Ana Ruiz"], rows["Bea Costa"], rows["Carlos Mendes"]
    assert ana.sales == Decimal("1785.00") and ana.cvr == pytest.approx(0.125)  # 0,125 is 12.5 %, not 125
    assert ana.unlock_rate == pytest.approx(0.125) and ana.golden_ratio == pytest.approx(0.25)
    assert ana.msgs_per_hr == pytest.approx(48.5) and ana.reply_time_s == 90
    assert carlos.sales == Decimal("2688.15") and carlos.fans_chatted == 1100 and carlos.hours == 0.5
    assert bea.hours == 7.5 and bea.cvr == pytest.approx(0.08)
    card = (await flow.send(tl, "chatter ana"))[-1]
    assert "CVR 12.5%" in card and "Unlock rate 12.5%" in card


async def test_utf16_tab_export_with_decimal_commas_as_excel_writes_it(flow: Flow) -> None:
    """Excel's 'Unicode text' export: UTF-16LE with a BOM, tabs, decimal commas, no group marks."""
    tl = await lead(flow)
    text = "Name\tSales\tCVR\tHours\r\nAna Ruiz\t1234,5\t0,125\t7,25\r\nBea Costa\t300\t0,08\t6\r\n"
    reply = (await flow.send(tl, "", files=[upload(text, encoding="utf-16")]))[-1]
    assert "2 chatters saved" in reply
    rows = await stored(flow)
    assert rows["Ana Ruiz"].sales == Decimal("1234.50") and rows["Ana Ruiz"].hours == 7.25


@pytest.mark.parametrize("locale", ["fr_FR", "ru_RU", "de_DE"])
async def test_money_and_percent_as_each_locale_writes_them(flow: Flow, locale: str) -> None:
    tl = await lead(flow)
    text = (f"Name;Sales;CVR\nAna Ruiz;{format_currency(1234.5, 'EUR', locale=locale)};"
            f"{format_percent(0.125, format='#,##0.0 %', locale=locale)}\n")
    assert "1 chatter saved" in (await flow.send(tl, "", files=[upload(text)]))[-1]
    ana = (await stored(flow))["Ana Ruiz"]
    assert ana.sales == Decimal("1234.50") and ana.cvr == pytest.approx(0.125)


async def test_impossible_values_are_refused_with_line_and_column_and_nothing_is_stored(flow: Flow) -> None:
    tl = await lead(flow)
    bad = EUROPEAN.replace("Bea Costa;22.11.2026;892,50;0,08;30\u00a0%", "Bea Costa;22.11.2026;892,50;1,25;130\u00a0%")
    bad = bad.replace(";1.100;70;25;0,5", ";-3;70;25;0,5")
    reply = (await flow.send(tl, "", files=[upload(bad)]))[-1]
    assert reply.startswith("I couldn't use “inflow-2026-11-22.csv”: I saved nothing from this file:")
    assert "line 7, column D “CVR”: “1,25” is over 100 %" in reply
    assert "line 7, column E “Unlock Rate”: “130 %” is over 100 % (Bea Costa)" in reply
    assert "line 8, column I “Fans”: “-3” is negative (Carlos Mendes)" in reply
    assert await repo_of(flow).count_days() == 0


async def test_a_file_mixing_decimal_commas_and_points_is_refused(flow: Flow) -> None:
    tl = await lead(flow)
    # The shape of DuckDB's mixed_format_fail.csv ("12,5", "145,00", "5.25") in an export.
    text = "Name;Sales\nAna Ruiz;12,5\nBea Costa;145,00\nCarlos Mendes;5.25\n"
    reply = (await flow.send(tl, "", files=[upload(text)]))[-1]
    assert "mixes decimal commas (line 2, Sales “12,5”) and decimal points (line 4, Sales “5.25”)" in reply
    assert await repo_of(flow).count_days() == 0


async def test_an_unbalanced_quote_is_reported_and_no_rows_vanish(flow: Flow) -> None:
    tl = await lead(flow)
    text = ("Name,Sales,CVR,Hours\nAna Ruiz,10,5%,8\n\"Bea Costa,20,6%,8\nCarlos Mendes,30,7%,8\n"
            "Dara Okafor,40,8%,8\nElif Yilmaz\",50,9%,8\nGrace Tan,60,9%,8\n")
    reply = (await flow.send(tl, "", files=[upload(text)]))[-1]
    assert "line 3: a quote (\") opened on line 3 is not closed until line 6" in reply
    assert "saved nothing" in reply and await repo_of(flow).count_days() == 0


# -- a corrected upload corrects -----------------------------------------------------------------


async def test_a_corrected_upload_replaces_the_day_hours_included_and_says_what_changed(flow: Flow) -> None:
    tl = await lead(flow)
    await flow.send(tl, "", files=[upload(EUROPEAN)])
    corrected = (EUROPEAN.replace(";1.100;70;25;0,5\n", ";1.100;70;25;7\n")
                 .replace("Ana Ruiz;22.11.2026;1.785,00;0,125", "Ana Ruiz;22.11.2026;1.800,00;0,13"))
    corrected = "\n".join(line for line in corrected.splitlines() if not line.startswith("Dara")) + "\n"
    reply = (await flow.send(tl, "", files=[upload(corrected)]))[-1]
    assert "3 chatters saved (3 updated from an earlier upload)" in reply
    assert "• Carlos: hours 0.5 → 7" in reply
    assert "• Ana: sales $1,785.00 → $1,800.00, CVR 12.5% → 13%" in reply
    assert "Bea" not in reply.split("What changed:")[1].split("In the earlier")[0]
    assert "In the earlier upload but not in this one, so unchanged: Dara." in reply
    rows = await stored(flow)
    assert rows["Carlos Mendes"].hours == 7 and rows["Carlos Mendes"].hours_source == EXPORT
    assert rows["Ana Ruiz"].sales == Decimal("1800.00") and rows["Dara Okafor"].sales == Decimal("98.00")
    assert "Score" in (await flow.send(tl, "chatter carlos"))[-1]  # 7 hours: no longer a day off
    again = (await flow.send(tl, "", files=[upload(corrected)]))[-1]
    assert "Nothing changed from the earlier upload." in again and await repo_of(flow).count_days() == 4


async def test_a_corrected_export_never_undoes_hubstaff_hours(flow: Flow) -> None:
    tl = await lead(flow)
    await flow.send(tl, "", files=[upload(EUROPEAN)])
    hubstaff = "Member,Date,Time\nCarlos Mendes,2026-11-22,6:00:00\n"
    await flow.send(tl, "", files=[upload(hubstaff, name="hubstaff-2026-11-22.csv")])
    corrected = EUROPEAN.replace(";1.100;70;25;0,5\n", ";1.100;70;25;7\n")
    reply = (await flow.send(tl, "", files=[upload(corrected)]))[-1]
    assert "Hours for Carlos stay as Hubstaff tracked them" in reply
    carlos = (await stored(flow))["Carlos Mendes"]
    assert carlos.hours == 6 and carlos.hours_source == HUBSTAFF


# -- a partial Hubstaff export changes only the people it names ----------------------------------

TIME_AND_ACTIVITY = (
    "Date,Member,Client,Project,Task,Notes,Time,Activity %,Idle time\n"
    "2026-11-22,Ana Ruiz,Agency,Model A,Chatting,,4:00:00,71%,0:05:00\n"
    "2026-11-22,Ana Ruiz,Agency,Model B,Chatting,,2:30:00,65%,0:00:00\n"
    "2026-11-22,Bea Costa,Agency,Model A,Chatting,,0:40:00,40%,0:10:00\n"
)


async def test_a_partial_hubstaff_export_changes_only_the_people_it_names(flow: Flow) -> None:
    tl = await lead(flow)
    await flow.send(tl, "", files=[upload(EUROPEAN)])
    reply = (await flow.send(tl, "", files=[upload(TIME_AND_ACTIVITY, name="hubstaff-time-activity.csv")]))[-1]
    assert reply.startswith("Got the Hubstaff hours for Sun 22 Nov: 2 chatters updated.")
    assert "• Ana: hours 8 → 6.5" in reply and "• Bea: hours 7.5 → 0.67" in reply
    assert "1 on a day off" in reply
    not_in = reply.split("Not in the file, hours unchanged: ")[1].split(".")[0]
    assert not_in == "Adedeji, Carlos, Dara, Elif, Femi, Grace, Sol"
    rows = await stored(flow)
    assert rows["Ana Ruiz"].hours == 6.5 and rows["Ana Ruiz"].hours_source == HUBSTAFF
    assert rows["Carlos Mendes"].hours == 0.5 and rows["Dara Okafor"].hours == 6  # the export's, untouched
    assert "Day off" in (await flow.send(tl, "chatter bea"))[-1]
    assert "Score" in (await flow.send(tl, "chatter dara"))[-1]


async def test_a_european_hubstaff_export_and_an_impossible_one(flow: Flow) -> None:
    tl = await lead(flow)
    text = "Member;Date;Hours\nAna Ruiz;22.11.2026;7,5\nCarlos Mendes;22.11.2026;0,25\n"
    reply = (await flow.send(tl, "", files=[upload(text, name="hubstaff.csv")]))[-1]
    assert "• Ana: 7.5 h" in reply and "• Carlos: 0.25 h" in reply
    rows = await stored(flow)
    assert rows["Ana Ruiz"].hours == 7.5 and rows["Carlos Mendes"].hours == 0.25
    too_much = ("Member,Date,Time\nBea Costa,2026-11-22,14:00:00\nBea Costa,2026-11-22,11:00:00\n"
                "Dara Okafor,2026-11-22,-1:00\n")
    reply = (await flow.send(tl, "", files=[upload(too_much, name="hubstaff.csv")]))[-1]
    assert "saved nothing" in reply and "Bea Costa has 25.0 hours on Sun 22 Nov, more than a day" in reply
    assert "line 4, column C “Time”" in reply
    assert "Bea Costa" not in await stored(flow)


# -- partial names -------------------------------------------------------------------------------


async def test_partial_names_match_like_the_upload_or_list_the_candidates(flow: Flow) -> None:
    tl = await lead(flow)
    await repo_of(flow).add_chatter("Carla Dias", "Team North", START)
    await flow.send(tl, "", files=[upload(EUROPEAN)])
    assert (await flow.send(tl, "chatter Carlo"))[-1].startswith("*Carlos Mendes* · Team North")
    assert (await flow.send(tl, "how is carlo doing?"))[-1].startswith("*Carlos Mendes*")
    assert (await flow.send(tl, "chatter Carl"))[-1] == (
        "“Carl” could be Carla Dias or Carlos Mendes. Which one? Use the full name.")
    assert "Did you mean Carlos Mendes?" in (await flow.send(tl, "chatter Carlso"))[-1]
    assert "Logged coaching for Carlos Mendes" in (await flow.send(tl, "log Carlo: PPV pricing"))[-1]
    # The same matcher places a CSV row: "Carlo" lands on Carlos and is shown as a loose match.
    reply = (await flow.send(tl, "", files=[upload("Name,Sales,Hours\nCarlo,10,8\n")]))[-1]
    assert "1 chatter saved" in reply and "Matched loosely: Carlo → Carlos Mendes." in reply


# -- invited team leads --------------------------------------------------------------------------


async def invite_code(flow: Flow, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    command = flow.app.cli_commands["invite"]
    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert await command.run(flow.app, parser.parse_args(list(args))) == 0
    out = capsys.readouterr().out
    found = re.search(r"start ([A-Z0-9-]{9,})", out)
    assert found, out
    return found.group(1)


async def seed_history(flow: Flow) -> None:
    repo = repo_of(flow)
    ids = {c.name: c.id for c in await repo.chatters()}
    rows = synthetic_days([ids[n] for n in ROSTER], DAY, 14)
    await repo.upsert_days(rows, ["sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s",
                                  "fans_chatted", "ppvs_sent", "ppvs_unlocked", "hours"], START)


LIA = Address("slack", "U0LIA")


async def test_an_invited_lead_gets_briefings_once_they_set_a_shift_and_a_late_one_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = await migrated_sqlite(tmp_path)
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START, database_url=url)
    try:
        await seed_history(flow)
        code = await invite_code(flow, capsys, "team_lead", "--name", "Lia Park", "--timezone", "Europe/Madrid")
        assert (await flow.send(LIA, f"start {code}"))[-1].startswith("Welcome, Lia! You're enrolled as team lead.")
        assert "shift" in (await flow.send(LIA, "help"))[-1]
        assert (await flow.send(LIA, "shift"))[-1].startswith("You have no shift yet")
        await flow.advance(timedelta(days=1))
        assert [m for m in flow.sent_to(LIA) if m.startswith("Hi Lia")] == []  # no shift, no briefing
        assert "isn't a time" in (await flow.send(LIA, "shift 25:00 mon-fri"))[-1]
        assert "I don't know a team called “Westeros”" in (await flow.send(LIA, "shift 09:00 mon-fri Westeros"))[-1]
        reply = (await flow.send(LIA, "shift 09:00 mon-fri north"))[-1]
        assert reply == ("Got it: your shift starts at 09:00 Mon–Fri (Europe/Madrid), covering Team North. "
                         "Your briefing comes 30 minutes before; the next one is Tue 24 Nov at 08:30.")
        await flow.advance(timedelta(hours=1, minutes=29))  # Tuesday 08:29 in Madrid
        assert [m for m in flow.sent_to(LIA) if m.startswith("Hi Lia")] == []
        await flow.advance(timedelta(minutes=1))  # Tuesday 08:30 in Madrid
        briefings = [m for m in flow.sent_to(LIA) if m.startswith("Hi Lia")]
        assert len(briefings) == 1
        assert briefings[0].startswith("Hi Lia — your briefing for the 09:00 shift")
        assert "Coach these 3 today (Team North):" in briefings[0] and "sent late" not in briefings[0]
        await flow.advance(timedelta(hours=6))
        assert len([m for m in flow.sent_to(LIA) if m.startswith("Hi Lia")]) == 1
    finally:
        await flow.app.stop()
    # Huddle is down at Wednesday 08:30 in Madrid and back at 08:50: the briefing is caught up, and says so.
    wednesday = START + timedelta(days=2, hours=1, minutes=50)
    again = await Flow.create(plugins=PLUGINS, config=CONFIG, start=wednesday, database_url=url)
    try:
        await again.app.scheduler.catch_up()
        await again.settle()
        late = [m for m in again.sent_to(LIA) if m.startswith("Hi Lia")]
        assert len(late) == 1
        assert "_(sent late: Huddle was offline at 08:30, when this briefing was due)_" in late[0]
        assert (await again.send(LIA, "shift off"))[-1].startswith("Briefings stopped.")
        await again.advance(timedelta(days=1))
        assert len([m for m in again.sent_to(LIA) if m.startswith("Hi Lia")]) == 1
        assert (await again.send(LIA, "shift"))[-1].startswith("You have no shift yet")
    finally:
        await again.close()


async def test_a_configured_leads_shift_comes_from_the_config_and_their_late_briefing_says_so(
        tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START, database_url=url)
    try:
        tl = await lead(flow)
        await seed_history(flow)
        assert (await flow.send(tl, "shift 08:00"))[-1] == (
            "Your shift comes from Huddle's config file: 10:00 Mon–Fri (Europe/Madrid). "
            "Ask your admin to change it there.")
    finally:
        await flow.app.stop()
    # Due Monday 09:30 Madrid (08:30 UTC); Huddle comes back at 09:10 UTC.
    again = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START + timedelta(hours=3, minutes=10),
                              database_url=url)
    try:
        await again.app.scheduler.catch_up()
        await again.settle()
        sent = again.sent_to(Address("slack", "U0TL0001"))
        assert len(sent) == 1 and sent[0].startswith("Hi Ezekiel — your briefing for the 10:00 shift")
        assert "sent late: Huddle was offline at 09:30" in sent[0]
    finally:
        await again.close()


# -- the dashboard -------------------------------------------------------------------------------


async def test_dashboard_has_a_legend_spans_its_data_and_shows_who_to_coach(tmp_path: Path) -> None:
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START, admin_token="t0ken")
    try:
        tl = await lead(flow)
        repo = repo_of(flow)
        ids = {c.name: c.id for c in await repo.chatters()}
        await repo.upsert_days(synthetic_days([ids[n] for n in ROSTER], DAY, 3),
                               ["sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s",
                                "fans_chatted", "ppvs_sent", "ppvs_unlocked", "hours"], START)
        await flow.clock.advance(timedelta(days=2))
        await flow.send(tl, "log Ana Ruiz: PPV pricing")
        await flow.clock.advance(timedelta(days=2))
        service = flow.app.deps["chatters"]
        html = await service.dashboard_html(90)
        assert 'data-part="legend"' in html
        for words in ("vs the chatter's own 7-day average", "Sales/hr over the last 7 days", "team average",
                      "more than 25 % above the team average", "one of the three to coach today"):
            assert words in html
        north = html.split('data-team="Team North"')[1].split("</section>")[0]
        assert "Daily sales, 20 Nov – 22 Nov (3 days)" in north  # not an empty 90 days
        assert ">20 Nov</text>" in north and ">22 Nov</text>" in north
        coach = north.split('data-part="coach-today"')[1].split("</div>")[0]
        picks = re.findall(r"<li><b>([^<]+)</b> — ", coach)
        who = (await flow.send(tl, "who"))[-1]
        assert len(picks) == 3 and all(f"*{p}*" in who for p in picks)  # the same three the lead is told
        assert north.count("Coach today #") == 3
        ana = north.split(">Ana Ruiz</div>")[1].split("<details>")[0]
        assert "Last coached 2 days ago" in ana  # on the card, not hidden behind Details
        assert "Never coached" in north.split(">Grace Tan</div>")[1].split("<details>")[0]
        south = html.split('data-team="Team South"')[1].split("</section>")[0]
        assert "No data available" in south and "Daily sales</h3>" in south
        if shutil.which("chromium"):
            page = tmp_path / "dashboard.html"
            page.write_text(html, encoding="utf-8")
            shot = _fresh_artifact("chatters_dashboard_3_days.png")
            proc = await asyncio.create_subprocess_exec(
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1300,1300",
                page.as_uri(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), timeout=90)
            assert [line for line in err.decode(errors="replace").splitlines() if ":CONSOLE" in line] == []
            assert shot.exists() and shot.stat().st_size > 20_000
    finally:
        await flow.close()


# -- the store's CSV import: an unbalanced quote -------------------------------------------------


async def test_customer_import_with_an_unbalanced_quote_reports_the_line_and_swallows_nobody(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = await Flow.create(plugins=["handlers.store"], start=START)
    try:
        path = tmp_path / "customers.csv"
        path.write_text("Customer ID,First Name,Last Name,Phone Number\n"
                        "C1,\"Ann,Lee,(619) 555-0101\n"
                        "C2,Bob,Ray,(619) 555-0102\n"
                        "C3,Cat,Fox,(619) 555-0103\n"
                        "C4,\"Dan\",Kim,(619) 555-0104\n"
                        "C5,Eve,Poe,(619) 555-0105\n", encoding="utf-8")
        command = flow.app.cli_commands["import"]
        parser = argparse.ArgumentParser()
        command.configure(parser)
        assert await command.run(flow.app, parser.parse_args(["customers", str(path), "--no-progress"])) == 0
        out = capsys.readouterr().out
        assert "2 rows read, 1 imported, 1 skipped" in out
        assert "line 2: a quote (\") opened on line 2 is not closed until line 5" in out
        svc = services(flow.app)
        assert await svc.customers.by_external_id("C1") is None  # not stored as "Ann,Lee,…C4,Dan"
        eve = await svc.customers.by_external_id("C5")
        assert eve is not None and eve.first_name == "Eve" and await svc.customers.count() == 1
    finally:
        await flow.close()


# -- through the real Slack adapter --------------------------------------------------------------


async def test_a_european_csv_dropped_in_a_slack_dm(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = await FakeSlack.start()
    try:
        slack_env(monkeypatch, fake)
        flow = await Flow.create(plugins=["channels.slack", *PLUGINS], config=CONFIG, start=START)
        try:
            await flow.person("Tia Brooks", {Role.TEAM_LEAD}, slack="U0TIA")
            await fake.wait_connected()
            meta = fake.add_file("F0EU", "inflow-2026-11-22.csv", EUROPEAN.encode("cp1252"))
            await fake.push_event(dm("", user="U0TIA", ts="1700002100.1", subtype="file_share", files=[meta]))
            await flow.settle()
            await eventually(lambda: bool(fake.posted))  # the reply's real HTTP call to the fake Slack
            text = fake.posted[-1]["text"]
            assert text.startswith("Got the export for Sun 22 Nov: 4 chatters saved.")
            assert "decimal commas" in text
            ana = (await stored(flow))["Ana Ruiz"]
            assert ana.sales == Decimal("1785.00") and ana.cvr == pytest.approx(0.125)
        finally:
            await flow.close()
    finally:
        await fake.close()
