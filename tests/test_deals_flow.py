"""Sales managers on Telegram, from their side: commands, buttons, monitoring across restarts, the AI path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.model import Role
from bot.testing import migrated_sqlite
from coaching.deals import DealEvent, EventKind
from storage.deals import DealRepo
from tests.deals_support import NOW, ScriptedAI, good_analysis, make_flow, set_ai


async def test_stale_lists_only_my_stale_deals() -> None:
    flow, ann, boris = await make_flow()
    try:
        [reply] = await flow.send(ann, "/stale 5")
        assert "#101" in reply and "#102" in reply
        assert "#103" not in reply and "#201" not in reply and "#104" not in reply
        [reply] = await flow.send(ann, "/stale 7")
        assert "#101" in reply and "#102" not in reply
        [reply] = await flow.send(ann, "/stale 60")
        assert "No stale deals" not in reply and "#101" in reply  # the overdue task keeps it stale
        [reply] = await flow.send(boris, "/stale")
        assert "Зависшие сделки" in reply and "#201" in reply and "#101" not in reply
    finally:
        await flow.close()


async def test_deals_lists_mine_by_priority() -> None:
    flow, ann, _ = await make_flow()
    try:
        [reply] = await flow.send(ann, "/deals")
        assert reply.index("#101") < reply.index("#102") < reply.index("#103")
        assert "#201" not in reply and "#104" not in reply
    finally:
        await flow.close()


async def test_unknown_and_someone_elses_deal_are_both_plain_not_found() -> None:
    flow, ann, boris = await make_flow()
    try:
        assert await flow.send(ann, "/analyze 999") == ["Deal 999 not found."]
        assert await flow.send(ann, "/analyze 201") == ["Deal 201 not found."]
        assert await flow.send(boris, "/analyze 101") == ["Сделка 101 не найдена."]
        assert await flow.send(boris, "x", callback="deal:detail:101") == ["Сделка 101 не найдена."]
        assert await flow.send(ann, "x", callback="deal:detail:abc") == ["Deal abc not found."]
    finally:
        await flow.close()


async def test_bad_arguments_get_the_usage() -> None:
    flow, ann, _ = await make_flow()
    try:
        for text, usage in [("/monitor 200", "/monitor HOURS"), ("/monitor 0", "/monitor HOURS"),
                            ("/monitor", "/monitor HOURS"), ("/monitor six", "/monitor HOURS"),
                            ("/analyze", "/analyze DEAL_ID"), ("/analyze 12abc", "/analyze DEAL_ID"),
                            ("/stale 0", "/stale [DAYS]"), ("/stale 5 6", "/stale [DAYS]"),
                            ("/analyze " + "😀" * 5000, "/analyze DEAL_ID")]:
            [reply] = await flow.send(ann, text)
            assert "Usage: " + usage in reply, (text, reply)
        [reply] = await flow.send(ann, "/monitor 200")
        assert "between 1 and 168" in reply
        assert await DealRepo(flow.app.db).monitors() == []
    finally:
        await flow.close()


async def test_people_who_are_not_sales_managers_get_nothing() -> None:
    flow, _, _ = await make_flow()
    try:
        eve = await flow.person("Eve", {Role.CUSTOMER}, telegram="555")
        [reply] = await flow.send(eve, "/deals")
        assert "#101" not in reply and "isn't available" in reply
        from bot.model import Address

        [reply] = await flow.send(Address("telegram", "777"), "/analyze 101")
        assert "#101" not in reply and "don't know you" in reply
    finally:
        await flow.close()


async def test_analyze_offers_the_detailed_button_and_it_works() -> None:
    flow, ann, _ = await make_flow()
    try:
        [brief] = await flow.send(ann, "/analyze 101")
        assert brief.startswith("🔴") and "Rule-based analysis" in brief
        sent = flow.channels["telegram"].sent[-1]
        assert [(b.text, b.data) for b in sent.buttons] == [("Detailed analysis", "deal:detail:101")]
        [detail] = await flow.send(ann, "", callback="deal:detail:101")
        assert "ACTION PLAN" in detail and "WHAT TO SAY TO THE CLIENT" in detail and "👤 Manager: Ann Lee" in detail
    finally:
        await flow.close()


async def test_russian_manager_reads_russian() -> None:
    flow, _, boris = await make_flow()
    try:
        [reply] = await flow.send(boris, "/analyze 201")
        assert "АНАЛИЗ СДЕЛКИ" in reply and "Позвонить клиенту сегодня" in reply
        assert flow.channels["telegram"].sent[-1].buttons[0].text == "Подробный анализ"
    finally:
        await flow.close()


async def test_monitor_sends_one_summary_and_details_only_for_high_priority() -> None:
    flow, ann, boris = await make_flow()
    try:
        [ok] = await flow.send(ann, "/monitor 6")
        assert "every 6 h" in ok and "2026-03-02 15:00 UTC" in ok
        before = len(flow.sent_to(ann))
        await flow.advance(timedelta(hours=5, minutes=59))
        assert len(flow.sent_to(ann)) == before
        await flow.advance(timedelta(minutes=1))
        new = flow.sent_to(ann)[before:]
        assert len(new) == 2, new
        assert new[0].startswith("📊") and "#101" in new[0] and "#102" in new[0] and "#103" not in new[0]
        assert "1 other deal unchanged" in new[0]  # the healthy deal is only counted
        assert "DEAL ANALYSIS</b> #101" in new[1]
        assert flow.sent_to(boris) == []
        [status] = await flow.send(ann, "/status")
        assert "every 6 h, next report 2026-03-02 21:00 UTC" in status
        [stopped] = await flow.send(ann, "/monitor_stop")
        assert "stopped" in stopped
        n = len(flow.sent_to(ann))
        await flow.advance(timedelta(hours=12))
        assert len(flow.sent_to(ann)) == n
        assert "was not running" in (await flow.send(ann, "/monitor_stop"))[0]
    finally:
        await flow.close()


async def test_monitoring_survives_a_restart_without_double_sending(tmp_path: Path) -> None:
    url = await migrated_sqlite(tmp_path)
    flow, ann, _ = await make_flow(url)
    await flow.send(ann, "/monitor 6")
    await flow.advance(timedelta(hours=6))
    first = [m for m in await flow.outbox_rows() if (m.idempotency_key or "").startswith("dealmon:")]
    assert len(first) == 2
    await flow.close()

    # the process comes back a minute later: catching up must not repeat the 15:00 run
    flow, ann, _ = await make_flow(url, start=NOW + timedelta(hours=6, minutes=1))
    try:
        assert flow.app.scheduler.jobs.get(f"deal_monitor:{ann.id}") is not None
        await flow.app.scheduler.catch_up()
        await flow.settle()
        assert flow.sent_to(ann) == []
        # the monitor run itself repeated (a crash between send and record) queues nothing new
        desk = flow.app.deps["deal_desk"]
        period = "2026-03-02T15:00Z"
        await desk.monitor_run(ann.id, period)
        await flow.settle()
        rows = [m for m in await flow.outbox_rows() if (m.idempotency_key or "").startswith("dealmon:")]
        assert len(rows) == 2
        # and the schedule goes on, on the same grid: nothing changed, so the digest alone
        await flow.advance(timedelta(hours=5, minutes=59))
        [digest] = flow.sent_to(ann)
        assert digest.startswith("📊") and "3 deals unchanged" in digest
    finally:
        await flow.close()


async def test_ai_analysis_is_cached_by_fingerprint() -> None:
    flow, ann, _ = await make_flow()
    ai = ScriptedAI([good_analysis()])
    set_ai(flow, ai)
    try:
        [first] = await flow.send(ann, "/analyze 101")
        assert "🤖 AI analysis" in first and "Big deal &lt;b&gt;cooling&lt;/b&gt; &amp; needs a call." in first
        assert len(ai.requests) == 1
        system, user = ai.requests[0]
        assert "English" in system and "Deal 101" in user and "Deal 201" not in user
        [again] = await flow.send(ann, "", callback="deal:detail:101")
        assert "🤖 AI analysis" in again and "Call Dana" in again
        assert len(ai.requests) == 1  # unchanged deal: not sent to the model again
        # a new call changes the deal: the model is asked again
        repo = DealRepo(flow.app.db)
        d = await repo.get(101)
        assert d is not None
        d.events.append(DealEvent(EventKind.CALL, flow.clock.now(), duration_s=60, direction="out"))
        await repo.upsert([d], flow.clock.now())
        await flow.send(ann, "/analyze 101")
        assert len(ai.requests) == 2
    finally:
        await flow.close()


async def test_ai_failure_falls_back_to_labelled_rules() -> None:
    flow, ann, boris = await make_flow()
    ai = ScriptedAI([None, TimeoutError("slow")])
    set_ai(flow, ai)
    try:
        [reply] = await flow.send(ann, "/analyze 101")
        assert "📏 Rule-based analysis (AI unavailable)" in reply and "Call the client today" in reply
        [reply] = await flow.send(boris, "/analyze 201")
        assert "Анализ по правилам" in reply
        assert "Russian" in ai.requests[1][0]
        # a failure is not cached: the next request asks the model again
        [reply] = await flow.send(ann, "/analyze 101")
        assert "🤖 AI analysis" in reply and len(ai.requests) == 3
    finally:
        await flow.close()


async def test_demo_managers_have_realistic_deals() -> None:
    from bot.model import Address
    from bot.testing import Flow

    flow = await Flow.create(plugins=["handlers.sales_managers"], demo=True, start=NOW)
    try:
        alex = await flow.app.people.by_address(Address("telegram", "100001"))
        irina = await flow.app.people.by_address(Address("telegram", "100002"))
        assert alex is not None and irina is not None and irina.locale == "ru"
        [deals] = await flow.send(alex, "/deals")
        assert deals.startswith("📊 <b>Your deals</b>: 4 active — 🔴 1") and "#5005" not in deals
        [stale] = await flow.send(alex, "/stale")
        assert "#5001" in stale and "#5003" in stale and "#5002" not in stale
        [ru] = await flow.send(irina, "/deals")
        assert "🔴 <b>#6001</b>" in ru and "4 500 000 ₽" in ru
    finally:
        await flow.close()


async def test_monitor_runs_use_ai_for_high_deals_and_the_cache_between_runs() -> None:
    flow, ann, _ = await make_flow()
    ai = ScriptedAI([good_analysis(), good_analysis()])
    set_ai(flow, ai)
    try:
        await flow.send(ann, "/monitor 1")
        await flow.advance(timedelta(hours=1))
        first = flow.sent_to(ann)[-2:]
        assert first[0].startswith("📊") and "🤖 AI analysis" in first[1]
        assert len(ai.requests) == 1  # only the one high-priority deal went to the model
        await flow.advance(timedelta(hours=1))
        assert len(flow.sent_to(ann)) == 4 and "unchanged" in flow.sent_to(ann)[-1]  # the same analysis: not re-sent
        assert len(ai.requests) == 1  # nothing changed: the cached analysis was reused
    finally:
        await flow.close()


async def test_a_russian_manager_gets_help_usage_errors_and_refusals_in_russian() -> None:
    """Person.locale picks the catalog for every text: help, usage errors, unknown commands."""
    flow, ann, boris = await make_flow()
    try:
        [help_ru] = await flow.send(boris, "/help")
        assert help_ru.startswith("<b>Коучинг по сделкам</b>") and "/deals [PAGE] — мои активные сделки" in help_ru
        assert "/monitor HOURS — сводка изменений каждые HOURS часов (1–168)" in help_ru
        [usage] = await flow.send(boris, "/stale 0")
        assert usage == "DAYS — от 1 до 365. Формат: /stale [DAYS]"
        [bad] = await flow.send(boris, "/analyze abc")
        assert bad == "«abc» — неверное значение DEAL_ID. Формат: /analyze DEAL_ID"
        [unknown] = await flow.send(boris, "/frobnicate")
        assert unknown.startswith("Я не знаю команду «frobnicate».\nДоступные команды:")
        [monitor] = await flow.send(boris, "/monitor 6")
        assert monitor.startswith("✅ Мониторинг включён")
        # the same texts in English for Ann
        [usage] = await flow.send(ann, "/stale 0")
        assert usage == "DAYS must be between 1 and 365. Usage: /stale [DAYS]"
    finally:
        await flow.close()
