"""Team leads in Slack, from their side: uploads, names, commands, briefings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.model import Address, InboundFile, Person
from bot.testing import migrated_sqlite
from coaching.demo_chatters import synthetic_days
from coaching.roles import Role
from storage.chatters import ChatterRepo
from tests.flows import Flow

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # Monday; the export covers Sunday 22 Nov
ROSTER = ["Ana Ruiz", "Adedeji Oyeniran", "Bea Costa", "Carlos Mendes", "Dara Okafor", "Elif Yilmaz",
          "Femi Adeyemi", "Grace Tan"]
CONFIG = {
    "chatters": {
        "teams": [{"name": "Team North", "chatters": ROSTER}, {"name": "Team South", "chatters": ["Sol Reyes"]}],
        "leads": [
            {"slack": "U0TL0001", "teams": ["Team North"], "timezone": "Europe/Madrid", "shift_start": "09:00",
             "days": ["mon", "tue", "wed", "thu", "fri"], "exceptions": [{"days": ["mon"], "shift_start": "10:00"}]},
            {"slack": "U0TL0002", "name": "Danilyn Cruz", "teams": ["Team North"], "timezone": "Asia/Manila",
             "shift_start": "20:00"},
        ],
    }
}
PLUGINS = ["handlers.team_leads"]

EXPORT = (
    "Name,Group,Total Sales ($),CVR,Unlock Rate,Golden Ratio,Msg/hr,Reply Time,Fans Chatted,PPVs Sent,"
    "PPVs Unlocked,Hours\n"
    "Ana Ruiz,Team North,\"$1,234.50\",12.5%,0.40,25%,48,1m 30s,120,80,32,8\n"
    "RUIZ ANA,Team North,$1.00,1%,0.1,1%,1,10s,1,1,1,8\n"
    "Bea Costa,Team North,$300.00,8%,0.30,20%,30,95,90,50,15,7\n"
    "Ajay Adedeji,Team North,$500.00,10%,0.35,22%,40,1m,100,60,20,8\n"
    "Carlos Mendes,Team North,$900.00,11%,0.33,24%,44,70,110,70,25,8\n"
    "Dara Okafor,Team North,$0.00,0%,0,0%,0,0s,0,0,0,0.5\n"
    "Old Chatter,Former Team,$0.00,0%,0,0%,0,0s,0,0,0,0\n"
    "Zed Unknown,Team North,$120.00,5%,0.2,10%,20,2m,50,20,4,6\n"
)


def csv_file(text: str = EXPORT, name: str = "inflow-2026-11-22.csv") -> InboundFile:
    return InboundFile(name=name, mimetype="text/csv", size=len(text), content=text.encode())


@pytest.fixture
async def flow() -> AsyncIterator[Flow]:
    f = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START)
    try:
        yield f
    finally:
        await f.close()


async def lead(flow: Flow) -> Person:
    return await flow.person("Ezekiel Mensah", {Role.TEAM_LEAD}, slack="U0TL0001")


async def test_upload_summary_names_unplaced_and_reupload_never_duplicates(flow: Flow) -> None:
    tl = await lead(flow)
    replies = await flow.send(tl, "", files=[csv_file()])
    text = replies[-1]
    assert "Sun 22 Nov" in text
    assert "4 chatters saved" in text  # Ana, Bea, Carlos, Dara
    assert "Ana Ruiz is in the file twice (“Ana Ruiz” and “RUIZ ANA”); I kept “Ana Ruiz”." in text
    assert "1 on a day off" in text
    assert "1 not active, ignored" in text
    assert "2 names I couldn't place: Ajay Adedeji (maybe Adedeji Oyeniran?); Zed Unknown" in text
    assert 'alias "Ajay Adedeji" = "Adedeji Oyeniran"' in text
    repo: ChatterRepo = flow.app.deps["chatters"].repo
    assert await repo.count_days() == 4

    again = (await flow.send(tl, "", files=[csv_file()]))[-1]
    assert "4 updated from an earlier upload" in again
    assert await repo.count_days() == 4

    reply = (await flow.send(tl, "alias “Ajay Adedeji” = “Adedeji Oyeniran”"))[-1]  # Slack's smart quotes
    assert "“Ajay Adedeji” is Adedeji Oyeniran" in reply
    third = (await flow.send(tl, "", files=[csv_file()]))[-1]
    assert "1 name I couldn't place: Zed Unknown" in third
    assert await repo.count_days() == 5


async def test_malformed_csv_is_refused_and_nothing_is_stored(flow: Flow) -> None:
    tl = await lead(flow)
    bad = "Name,Total Sales ($),CVR\nAna Ruiz,$12.00,10%\nBea Costa,twelve,10%\n"
    reply = (await flow.send(tl, "", files=[csv_file(bad)]))[-1]
    assert reply.startswith("I couldn't use “inflow-2026-11-22.csv”")
    assert "saved nothing" in reply and "line 3" in reply
    assert await flow.app.deps["chatters"].repo.count_days() == 0
    image = InboundFile(name="photo.png", mimetype="image/png", content=b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "only read CSV" in (await flow.send(tl, "", files=[image]))[-1]
    undownloaded = InboundFile(name="x.csv", mimetype="text/csv", url="https://files.example/x.csv")
    assert "couldn't download" in (await flow.send(tl, "", files=[undownloaded]))[-1]
    assert await flow.app.deps["chatters"].repo.count_days() == 0


async def test_upload_date_from_message_text(flow: Flow) -> None:
    tl = await lead(flow)
    reply = (await flow.send(tl, "for 2026-11-20", files=[csv_file(name="export.csv")]))[-1]
    assert "Fri 20 Nov" in reply


async def seed_history(flow: Flow, days: int = 14) -> ChatterRepo:
    repo: ChatterRepo = flow.app.deps["chatters"].repo
    ids = {c.name: c.id for c in await repo.chatters()}
    rows = synthetic_days([ids[n] for n in ROSTER], START.date() - timedelta(days=1), days)
    await repo.upsert_days(rows, ["sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s",
                                  "fans_chatted", "ppvs_sent", "ppvs_unlocked", "hours"], START)
    return repo


async def test_briefing_dm_before_shift_once(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START, database_url=url)
    try:
        tl = await lead(flow)
        await seed_history(flow)
        await flow.advance(timedelta(hours=2, minutes=29))  # 08:29 UTC = 09:29 Madrid: Monday shift is 10:00
        assert flow.sent_to(tl) == []
        await flow.advance(timedelta(minutes=1))  # 09:30 Madrid, 30 minutes before the Monday shift
        sent = flow.sent_to(tl)
        assert len(sent) == 1
        briefing = sent[0]
        assert briefing.startswith("Hi Ezekiel — your briefing for the 10:00 shift")
        assert "Coach these 3 today (Team North):" in briefing
        picked = [n for n in ROSTER if f"*{n}*" in briefing]
        assert len(picked) == 3
        assert "score" in briefing and "•" in briefing
        await flow.advance(timedelta(hours=3))
        assert len(flow.sent_to(tl)) == 1
    finally:
        await flow.app.stop()
    again = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START + timedelta(hours=3, minutes=40),
                              database_url=url)
    try:
        await again.app.scheduler.catch_up()  # a restart within the grace period: the briefing must not repeat
        await again.settle()
        assert again.sent_to(Address("slack", "U0TL0001")) == []
        rows = [r for r in await again.outbox_rows() if (r.idempotency_key or "").startswith("briefing:U0TL0001:")]
        assert len(rows) == 1
    finally:
        await again.close()


async def test_second_lead_created_from_config_gets_their_own_briefing(flow: Flow) -> None:
    await seed_history(flow)
    danilyn = await flow.app.people.by_address(Address("slack", "U0TL0002"))
    assert danilyn is not None and Role.TEAM_LEAD in danilyn.roles
    await flow.advance(timedelta(hours=5, minutes=30))  # 11:30 UTC = 19:30 Manila
    assert flow.sent_to(danilyn)[0].startswith("Hi Danilyn")


async def test_day_off_is_never_picked_and_shown_as_day_off(flow: Flow) -> None:
    tl = await lead(flow)
    repo = await seed_history(flow)
    femi = next(c.id for c in await repo.chatters() if c.name == "Femi Adeyemi")
    await repo.upsert_days([{"chatter_id": femi, "day": START.date() - timedelta(days=1), "hours": 0.4}], ["hours"],
                           START)
    assert "Day off" in (await flow.send(tl, "chatter femi"))[-1]
    assert "Femi" not in (await flow.send(tl, "who"))[-1]
    assert "• Femi Adeyemi: Day off" in (await flow.send(tl, "team"))[-1]


async def test_commands_cards_log_and_report(flow: Flow) -> None:
    tl = await lead(flow)
    assert "No numbers yet" in (await flow.send(tl, "who"))[-1]
    await seed_history(flow)
    who = (await flow.send(tl, "who"))[-1]
    assert who.startswith("To coach today (Sun 22 Nov numbers):") and who.count("\n") == 3
    card = (await flow.send(tl, "chatter ana ruiz"))[-1]
    assert card.startswith("*Ana Ruiz* · Team North · Sun 22 Nov")
    assert "Score *" in card and "Funnel:" in card and "Not coached yet." in card
    assert (await flow.send(tl, "how is ana doing?"))[-1] == card
    assert (await flow.send(tl, "how's Ana Ruiz"))[-1] == card
    assert "You can use:" in (await flow.send(tl, "how is it going?"))[-1]

    assert "Logged coaching for Ana Ruiz" in (await flow.send(tl, "log Ana: talked about PPV pricing"))[-1]
    assert "Logged coaching for Bea Costa" in (await flow.send(tl, "coached bea costa reply speed"))[-1]
    assert "Coached today." in (await flow.send(tl, "chatter Ana"))[-1]
    assert "Report on Grace Tan saved" in (await flow.send(tl, "report Grace Tan: late twice"))[-1]

    assert "I don't know a chatter called “Nobody”" in (await flow.send(tl, "chatter Nobody"))[-1]
    assert "Usage: log NAME: notes…" in (await flow.send(tl, "log"))[-1]
    assert "Write it as" in (await flow.send(tl, "log somebody"))[-1]
    assert "Add what you talked about" in (await flow.send(tl, "log Ana:"))[-1]
    assert "Write it as" in (await flow.send(tl, "alias nothing here"))[-1]
    team = (await flow.send(tl, "team"))[-1]
    assert team.startswith("*Team North*") and "working" in team
    assert "I don't know a team called" in (await flow.send(tl, "team Westeros"))[-1]
    south = (await flow.send(tl, "team south"))[-1]
    assert "Sol Reyes: No data available" in south
    long = (await flow.send(tl, "chatter " + "😀" * 5000))[-1]
    assert "I don't know a chatter" in long


async def test_strangers_and_other_roles_reach_nothing(flow: Flow) -> None:
    chatter = await flow.person("Ana", {Role.CHATTER}, slack="U0CH0001")
    assert "isn't available" in (await flow.send(chatter, "who"))[-1]
    stranger = Address("slack", "U0NOBODY")
    assert "don't know you" in (await flow.send(stranger, "chatter Ana"))[-1]
    assert await flow.app.deps["chatters"].repo.count_days() == 0


async def test_scheduled_ingest_with_monday_exception_drop_folder_and_hubstaff(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "inflow-2026-11-22.csv").write_text(EXPORT, encoding="utf-8")
    dashboard = tmp_path / "out" / "dashboard.html"
    config = {"chatters": {**CONFIG["chatters"], "drop_dir": str(drop), "dashboard_path": str(dashboard)}}
    flow = await Flow.create(plugins=PLUGINS, config=config, start=START)
    try:
        service = flow.app.deps["chatters"]
        asked: list[object] = []

        async def hubstaff(day: object) -> dict[str, float]:
            asked.append(day)
            return {"Ana Ruiz": 7.5, "Bea Costa": 0.5, "Carlos Mendes": 0.0, "Ajay Adedeji": 6.0}

        service.hours_source = hubstaff
        tl = await lead(flow)
        await flow.advance(timedelta(hours=1, minutes=45))  # 07:45 UTC Monday: the ingest is deferred
        assert (drop / "inflow-2026-11-22.csv").exists() and asked == []
        await flow.advance(timedelta(hours=7, minutes=45))  # 15:30 UTC Monday
        assert not (drop / "inflow-2026-11-22.csv").exists()
        assert (drop / "processed" / "inflow-2026-11-22.csv").exists()
        assert [str(d) for d in asked] == ["2026-11-22"]
        assert dashboard.exists() and "Chatter coaching" in dashboard.read_text(encoding="utf-8")
        assert "Day off" in (await flow.send(tl, "chatter bea costa"))[-1]  # Hubstaff's 0.5 h beats the CSV's 7
        assert "Day off" in (await flow.send(tl, "chatter carlos"))[-1]  # a member who tracked nothing: 0 h
        assert "Score" in (await flow.send(tl, "chatter ana"))[-1]
        await flow.advance(timedelta(days=1))  # Tuesday 15:30: the ingest ran at 07:30 instead
        assert len(asked) == 2
    finally:
        await flow.close()


async def test_multi_day_export_is_split_by_its_date_column(flow: Flow) -> None:
    tl = await lead(flow)
    text = ("Date,Name,Sales,Hours\n2026-11-21,Ana Ruiz,$10,8\n2026-11-22,Ana Ruiz,$20,8\n"
            "11/22/2026,Bea Costa,$5,8\n")
    reply = (await flow.send(tl, "", files=[csv_file(text, name="week.csv")]))[-1]
    assert reply.startswith("Got the export for Sat 21 Nov, Sun 22 Nov: 3 chatter-days saved.")
    repo: ChatterRepo = flow.app.deps["chatters"].repo
    assert await repo.count_days() == 3


async def test_hubstaff_export_uploaded_in_slack_sets_hours(flow: Flow) -> None:
    tl = await lead(flow)
    await flow.send(tl, "", files=[csv_file()])
    hubstaff = "Member,Date,Time\nAna Ruiz,2026-11-22,7:30:00\nBea Costa,2026-11-22,0:40:00\nNobody,2026-11-22,1:00\n"
    reply = (await flow.send(tl, "", files=[csv_file(hubstaff, name="hubstaff-export.csv")]))[-1]
    assert reply.startswith("Got the Hubstaff hours for Sun 22 Nov")
    assert "1 name I couldn't place: Nobody" in reply
    assert "Day off" in (await flow.send(tl, "chatter bea costa"))[-1]  # Hubstaff beats the export's 7 hours


async def test_hubstaff_csv_fallback_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "hubstaff.csv"
    export.write_text("Member;Date;Duration\nAna Ruiz;2026-11-23;0:20:00\n", encoding="utf-8")
    monkeypatch.setenv("HUDDLE_HUBSTAFF_CSV", str(export))
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START + timedelta(days=1))  # a Tuesday
    try:
        tl = await lead(flow)
        await flow.advance(timedelta(hours=1, minutes=30))  # 07:30 UTC: the ingest
        assert "Day off" in (await flow.send(tl, "chatter ana"))[-1]
    finally:
        await flow.close()


async def test_a_russian_team_lead_reads_help_cards_and_the_briefing_in_russian() -> None:
    """Person.locale picks the message catalog for a team lead too: help, usage, card, who, briefing."""
    flow = await Flow.create(plugins=PLUGINS, config=CONFIG, start=START)
    try:
        tl = await flow.person("Ezekiel Mensah", {Role.TEAM_LEAD}, slack="U0TL0001", locale="ru")
        assert "Цифр пока нет" in (await flow.send(tl, "who"))[-1]
        await seed_history(flow)
        [help_ru] = await flow.send(tl, "help")
        assert "Доступные команды:\nwho [TEAM…] — три чаттера" in help_ru  # (this flow has no /help plugin)
        [who] = await flow.send(tl, "who")
        assert who.startswith("С кем поработать сегодня (цифры за вс 22 нояб.):") and "оценка" in who
        [card] = await flow.send(tl, "chatter ana ruiz")
        assert "Оценка *" in card and "Воронка:" in card and "Коучинга ещё не было." in card
        assert "Формат: `log ИМЯ: о чём говорили`" in (await flow.send(tl, "log somebody"))[-1]
        assert "Формат: log NAME: notes…" in (await flow.send(tl, "log"))[-1]
        assert (await flow.send(tl, "team Westeros"))[-1].startswith("Я не знаю команду «Westeros».")
        await flow.advance(timedelta(hours=2, minutes=30))  # 09:30 Madrid, 30 minutes before the Monday shift
        [briefing] = flow.sent_to(tl)[-1:]
        assert briefing.startswith("Привет, Ezekiel! Брифинг на смену в 10:00 (цифры за вс 22 нояб.).")
        assert "Сегодня поработайте с этими 3 (Team North):" in briefing and "После сессии запишите её" in briefing
    finally:
        await flow.close()
