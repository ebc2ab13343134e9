"""Demo data: one chat team, two team leads on Slack, eight chatters with three weeks of numbers
(and a newcomer with none yet).

The numbers are synthetic but shaped like real ones (a steady top seller, one improving, one
declining, weekly days off, one chatter with twice the traffic) so that a briefing, a card and the
dashboard look real on first start. The same generator feeds the benchmark.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.model import Address, Person
from coaching.chatter_config import LeadConfig
from coaching.roles import Role

if TYPE_CHECKING:
    from bot.app import App
    from coaching.chatter_service import ChatterService

DEMO_TEAM = "Team North"
DEMO_CHATTERS = ["Ana Ruiz", "Adedeji Oyeniran", "Bea Costa", "Carlos Mendes", "Dara Okafor", "Elif Yilmaz",
                 "Femi Adeyemi", "Grace Tan"]
DEMO_NEWCOMER = "Hana Sato"
"""On the roster, no numbers yet: shows "No data available"."""
DEMO_LEADS = [
    LeadConfig(slack="U0TL0001", name="Ezekiel Mensah", teams=[DEMO_TEAM], timezone="Europe/Madrid",
               shift_start=time(9, 0)),
    LeadConfig(slack="U0TL0002", name="Danilyn Cruz", teams=[DEMO_TEAM], timezone="Asia/Manila",
               shift_start=time(20, 0)),
]
DEMO_DAYS = 21


def synthetic_days(chatter_ids: Sequence[int], end: date, days: int, seed: int = 7) -> list[dict[str, Any]]:
    """Daily rows for each chatter id over `days` days ending on `end` (inclusive)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for n, cid in enumerate(chatter_ids):
        skill = 0.55 + 0.9 * rng.random()
        drift = 0.06 if n % 8 == 2 else -0.05 if n % 8 == 3 else 0.0
        noise = (0.98, 1.02) if drift else (0.9, 1.1)
        traffic = 2.0 if n % 8 == 5 else 1.0
        off_day = n % 7
        for i in range(days):
            day = end - timedelta(days=days - 1 - i)
            if day.weekday() == off_day:
                rows.append({"chatter_id": cid, "day": day, "hours": round(rng.uniform(0, 0.5), 2)})
                continue
            k = max(0.2, skill * (1 + drift * (i - days + 1)) * rng.uniform(*noise))
            hours = round(rng.uniform(5.5, 8.5), 2)
            fans = int(hours * rng.uniform(9, 13) * traffic)
            sent = int(fans * rng.uniform(0.5, 0.8) * k)
            unlocked = int(sent * min(0.9, 0.35 * k))
            sales = Decimal(unlocked * rng.uniform(14, 22) * min(k, 1.4)).quantize(Decimal("0.01"))
            rows.append({
                "chatter_id": cid, "day": day, "hours": hours, "fans_chatted": fans, "ppvs_sent": sent,
                "ppvs_unlocked": unlocked, "sales": sales,
                "cvr": round(min(0.6, 0.12 * k * rng.uniform(0.9, 1.1)), 4),
                "unlock_rate": round(unlocked / sent, 4) if sent else None,
                "golden_ratio": round(min(0.9, 0.3 * k), 4),
                "msgs_per_hr": round(45 * k * rng.uniform(0.9, 1.1), 1),
                "reply_time_s": round(95 / k * rng.uniform(0.85, 1.15), 1),
            })
    return rows


def synthetic_csv(active: Sequence[str], inactive: int, day: date, seed: int = 11) -> str:
    """An Inflow-style export: the active chatters with messy names plus old, inactive ones."""
    rng = random.Random(seed)
    lines = ["Name,Group,Total Sales ($),CVR,Unlock Rate,Golden Ratio,Msg/hr,Reply Time,Fans Chatted,PPVs Sent,"
             "PPVs Unlocked,Date"]
    for i, name in enumerate(active):
        shown = name.upper() if i % 5 == 1 else (" ".join(reversed(name.split())) if i % 5 == 2 else name)
        sales = rng.uniform(200, 2400)
        lines.append(f'{shown},{DEMO_TEAM},"${sales:,.2f}",{rng.uniform(5, 25):.1f}%,{rng.uniform(0.2, 0.6):.3f},'
                     f"{rng.uniform(10, 40):.1f}%,{rng.uniform(20, 70):.0f},{rng.randint(0, 3)}m {rng.randint(0, 59)}s,"
                     f"{rng.randint(40, 140)},{rng.randint(20, 90)},{rng.randint(5, 40)},{day.isoformat()}")
    for i in range(inactive):
        lines.append(f"Former Chatter {i:03d},Old Team,$0.00,0%,0,0%,0,0s,0,0,0,{day.isoformat()}")
    return "\n".join(lines) + "\n"


async def seed_demo(app: App, service: ChatterService) -> None:
    now = app.clock.now()
    for lead in DEMO_LEADS:
        address = Address("slack", lead.slack)
        if await app.people.by_address(address) is None:
            await app.people.add(Person(None, lead.name or "Team lead", frozenset({Role.TEAM_LEAD}), [address],
                                        lead.timezone), now)
    await service.repo.sync_roster({DEMO_TEAM: [*DEMO_CHATTERS, DEMO_NEWCOMER]}, now, deactivate_others=False)
    chatters = {c.name: c.id for c in await service.repo.chatters()}
    ids = [chatters[n] for n in DEMO_CHATTERS]
    end = service.default_day()
    rows = synthetic_days(ids, end, DEMO_DAYS)
    columns = ["sales", "cvr", "unlock_rate", "golden_ratio", "msgs_per_hr", "reply_time_s", "fans_chatted",
               "ppvs_sent", "ppvs_unlocked", "hours"]
    await service.repo.upsert_days(rows, columns, now)
    lead = await app.people.by_address(Address("slack", DEMO_LEADS[0].slack))
    lead_id = lead.id if lead else None
    await service.repo.log(ids[0], lead_id, "coaching", "Talked about PPV pricing; try a $9 opener.",
                           now - timedelta(days=2))
    await service.repo.log(ids[4], lead_id, "coaching", "Reply speed: keep fewer chats open.", now - timedelta(days=9))
    await service.repo.log(ids[3], lead_id, "report", "Missed the first hour of the shift twice this week.",
                           now - timedelta(days=1))


