"""Issue 11, team leads and sales managers: their language everywhere, and markup that follows the channel.

From the reader's side: a Russian team lead uploads exports (Inflow and Hubstaff), is refused a
bad one, logs coaching, teaches an alias and asks about a partial name — every reply is Russian,
dates included. A Russian sales manager's monitoring digest is Russian. And the same replies on
Slack, Telegram and SMS carry that channel's markup only, with names from a CSV that hold `<`,
`*` and `&` shown exactly as written.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, time, timedelta

from bot.model import InboundFile
from channels.base import Markup
from channels.markup import render
from coaching.chatter_config import LeadConfig
from coaching.roles import Role
from tests.flows import Flow
from tests.test_chatters_flow import CONFIG, EXPORT, START, csv_file, seed_history
from tests.test_deals_monitoring import mia_flow

ENGLISH = ("Got the", "saved", "updated", "Hours", "couldn't place", "maybe", "could be", "What changed",
           "Not in the file", "alias \"", "To teach me", "Matched loosely", "Logged", "I don't know",
           "Sun 22", "Mon 23", "Watch:", "line ", "column", "negative")
"""English that would show through in a Russian reply (`alias "…"` is the command's own syntax)."""


def english_in(text: str) -> list[str]:
    return [w for w in ENGLISH if w in text.replace('<code>alias "', "").replace('`alias "', "")]


async def test_a_russian_team_lead_gets_every_upload_and_log_reply_in_russian() -> None:
    flow = await Flow.create(plugins=["handlers.team_leads"], config=CONFIG, start=START)
    try:
        tl = await flow.person("Ezekiel Mensah", {Role.TEAM_LEAD}, slack="U0TL0001", locale="ru")
        [first] = await flow.send(tl, "", files=[csv_file()])
        assert first.startswith("Выгрузка за вс 22 нояб. получена: сохранено 4 чаттера.\n"
                                "Выходной (меньше 1 часа работы): 1.\nНеактивных, пропущено: 1."), first
        assert "«RUIZ ANA»" in first and "я оставил «Ana Ruiz»" in first  # the same chatter twice
        assert "Не удалось сопоставить 2 имени: Ajay Adedeji (возможно, Adedeji Oyeniran?); Zed Unknown." in first
        assert 'Чтобы я запомнил имя раз и навсегда: `alias "Ajay Adedeji" = "Adedeji Oyeniran"`' in first
        assert not english_in(first), english_in(first)

        corrected = EXPORT.replace(",0.5\n", ",7\n").replace("$300.00", "$310.00")
        [second] = await flow.send(tl, "", files=[csv_file(corrected)])
        assert "(обновлено по сравнению с прошлой загрузкой: 4)" in second
        assert "Что изменилось:\n• Bea: продажи $300.00 → $310.00\n• Dara: часы 0.5 → 7" in second
        assert not english_in(second), english_in(second)

        hubstaff = "Member,Time\nAna Ruiz,7:30:00\nBea Costa,6:00:00\n"
        [hours] = await flow.send(tl, "", files=[InboundFile(name="hubstaff-2026-11-22.csv", mimetype="text/csv",
                                                             size=len(hubstaff), content=hubstaff.encode())])
        assert hours.startswith("Часы Hubstaff за вс 22 нояб. получены: обновлено 2 чаттера.\n"
                                "Часы:\n• Ana: часы 8 → 7.5"), hours
        assert "Нет в файле, часы без изменений: Adedeji, Carlos, Dara" in hours
        assert not english_in(hours), english_in(hours)

        bad = "Name;Sales;CVR;Fans;Hours\nAna Ruiz;1.234,50;0,125;120;8\nBea Costa;300,00;1,25;-5;7\n"
        [refused] = await flow.send(tl, "", files=[csv_file(bad)])
        assert refused.startswith("Не удалось использовать «inflow-2026-11-22.csv»: Из этого файла ничего не "
                                  "сохранено: строка 3, столбец C «CVR»: «1,25» больше 100 %"), refused
        assert "строка 3, столбец D «Fans»: «-5» — отрицательное число (Bea Costa)" in refused
        assert "Исправьте ошибки" in refused and not english_in(refused), english_in(refused)

        [logged] = await flow.send(tl, "log Carlo: цены на PPV")  # a partial name, as the upload matcher reads it
        assert logged == "Коучинг с Carlos Mendes записан. «Дни с последнего коучинга» считаю с сегодняшнего дня."
        [reported] = await flow.send(tl, "report Bea: опаздывает")
        assert reported.startswith("Сообщение о Bea Costa сохранено.")
        [unknown] = await flow.send(tl, "chatter Carlso")
        assert unknown == "Я не знаю чаттера «Carlso». Может быть, Carlos Mendes?"
        [alias] = await flow.send(tl, 'alias "Zed Unknown" = "Grace Tan"')
        assert alias == "Понял: «Zed Unknown» — это Grace Tan. Запомню для всех загрузок."
        [shift] = await flow.send(tl, "shift 09:00")
        assert "09:00 пн–пт (Europe/Madrid)" in shift and not english_in(shift), shift
        lia = await flow.person("Lia Park", {Role.TEAM_LEAD}, slack="U0LIA", locale="ru", timezone="Europe/Madrid")
        [bad_shift] = await flow.send(lia, "shift 25:00 mon-fri")
        assert bad_shift.startswith("«25:00» — это не время; напишите, например, 09:00 или 9am. Формат:"), bad_shift
        [set_shift] = await flow.send(lia, "shift 09:00 mon,wed")
        assert "09:00 пн, ср (Europe/Madrid)" in set_shift and "следующий — пн 23 нояб. в 08:30" in set_shift, set_shift

        await seed_history(flow)
        [card] = await flow.send(tl, "chatter Adedeji")
        assert "Внимание: оценка 31 (Слабо); продажи/ч упали больше чем на 10% за неделю; медленные ответы " \
               "(2 мин 26 с против 1 мин 34 с у команды)" in card and "Время ответа 2 мин 26 с" in card
        assert not english_in(card), card
    finally:
        await flow.close()


async def test_a_russian_sales_manager_gets_a_russian_digest() -> None:
    flow, mia, _ = await mia_flow(locale="ru", timezone="Europe/Moscow")
    try:
        [on] = await flow.send(mia, "/monitor 1")
        assert on.startswith("✅ Мониторинг включён"), on
        await flow.advance(timedelta(hours=1))
        digests = [b for b in flow.sent_to(mia) if b.startswith("📊")]
        assert len(digests) == 1 and "<b>Мониторинг сделок</b>: активных 80" in digests[0]
        assert "Deal monitoring" not in digests[0] and "unchanged" not in digests[0]
    finally:
        await flow.close()


# -- markup follows the channel -------------------------------------------------------------------

ODD = ["Lou <Lulu> Diaz", "Ray *Star* Cole", "Kim & Co Park"]
ODD_CONFIG = {"chatters": {"teams": [{"name": "R&D <North>", "chatters": ODD}]}}
ODD_EXPORT = (
    "Name,Sales,CVR,Unlock Rate,Golden Ratio,Msg/hr,Reply Time,Fans Chatted,PPVs Sent,PPVs Unlocked,Hours\n"
    "Lou <Lulu> Diaz,$900.00,11%,0.33,24%,44,70,110,70,25,8\n"
    "Ray *Star* Cole,$300.00,8%,0.30,20%,30,95,90,50,15,7\n"
    "Kim & Co Park,$500.00,10%,0.35,22%,40,60,100,60,20,8\n"
    "Dee <D> & *Dot*,$120.00,5%,0.2,10%,20,120,50,20,4,6\n"
)
SHOWN = [*ODD, "Dee <D> & *Dot*", "R&D <North>"]


def visible(body: str, markup: Markup) -> str:
    """What the reader's app shows: Telegram parses its HTML, Slack unescapes its three entities."""
    if markup is Markup.TELEGRAM_HTML:
        return html.unescape(re.sub(r"</?(?:b|i|code|pre|s|a)(?: [^>]*)?>", "", body))
    if markup is Markup.SLACK_MRKDWN:
        return body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return body


def without_names(text: str) -> str:
    for name in sorted(SHOWN, key=len, reverse=True):
        text = text.replace(name, "NAME")
    return text


def check(body: str, markup: Markup, names: list[str]) -> None:
    seen = visible(body, markup)
    for name in names:
        assert name in seen, (markup, name, seen)
    rest = without_names(seen)
    assert "&lt;" not in rest and "&amp;" not in rest and "<b>" not in rest and "</" not in rest, (markup, rest)
    if markup is not Markup.SLACK_MRKDWN:  # Slack's own `*bold*` is fine there
        assert "*" not in rest and "_" not in rest and "`" not in rest, (markup, rest)
    if markup is Markup.TELEGRAM_HTML:
        assert re.search("<(?:b|code)>", body) and "&lt;" in body  # real tags, names escaped


async def test_the_same_replies_carry_each_channels_markup_and_names_survive_intact() -> None:
    flow = await Flow.create(plugins=["handlers.team_leads"], config=ODD_CONFIG, start=START)
    try:
        leads = {
            Markup.SLACK_MRKDWN: await flow.person("Sam Lead", {Role.TEAM_LEAD}, slack="U0SAM"),
            Markup.TELEGRAM_HTML: await flow.person("Tia Lead", {Role.TEAM_LEAD}, telegram="700001"),
            Markup.PLAIN: await flow.person("Sol Lead", {Role.TEAM_LEAD}, sms="+16195550142"),
        }
        data = ODD_EXPORT.encode()
        upload = InboundFile(name="inflow-2026-11-22.csv", mimetype="text/csv", size=len(data), content=data)
        replies: dict[Markup, str] = {}
        for markup, lead in leads.items():
            if markup is not Markup.PLAIN:  # SMS carries no files
                [replies[markup]] = await flow.send(lead, "", files=[upload])
                check(replies[markup], markup, ["Dee <D> & *Dot*"])
            [team] = await flow.send(lead, "team")
            check(team, markup, ["R&D <North>", *ODD])
            [who] = await flow.send(lead, "who")
            check(who, markup, ODD)
        assert "(3 updated from an earlier upload)" in replies[Markup.TELEGRAM_HTML]

        service = flow.app.deps["chatters"]
        lead = LeadConfig(slack="U0SAM", teams=[], timezone="UTC", shift_start=time(9, 0))
        brief = await service.briefing_for(lead, "<Sam>&Co Boss",
                                           late_since=datetime(2026, 11, 23, 8, 30, tzinfo=UTC))
        for markup in leads:
            body = render(brief.text, markup)
            check(body, markup, ["Hi <Sam>&Co —", *brief.picks])
            assert "(sent late: Huddle was offline at 08:30" in visible(body, markup)
        assert "_(sent late" in render(brief.text, Markup.SLACK_MRKDWN)
        assert "<i>(sent late" in render(brief.text, Markup.TELEGRAM_HTML)
    finally:
        await flow.close()


async def test_the_cli_prints_the_upload_summary_as_plain_text() -> None:
    """`python main.py ingest` is read in a terminal: no tags, no entities, names as written."""
    flow = await Flow.create(plugins=["handlers.team_leads"], config=ODD_CONFIG, start=START)
    try:
        summary = await flow.app.deps["chatters"].ingest_file(ODD_EXPORT.encode(), filename="inflow-2026-11-22.csv")
        plain = render(summary.text(), Markup.PLAIN)
        assert "Dee <D> & *Dot*" in plain and "<code>" not in plain and "&lt;" not in plain
        assert 'alias "Dee <D> & *Dot*" = "Their Name"' in plain
    finally:
        await flow.close()
