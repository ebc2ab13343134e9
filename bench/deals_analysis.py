"""Deal analysis throughput: `python -m bench.deals_analysis [--deals 10000] [--ai-deals 100]`.

1. Rules path: metrics + stale + priority for 10,000 deals (about 20 events each), then the full
   rule-based coaching text, against a naive baseline measured in the same run (one filtered,
   re-sorted pass per metric, as the predecessor computed them). Target: under 2 s.
2. AI path: 100 deals through the fake OpenAI-compatible server (each answer takes
   `--latency` s), at several concurrency limits; limit 1 is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from coaching.deal_coach import DealCoach, rule_analysis
from coaching.deals import Deal, DealEvent, DealRules, EventKind, Priority, assess_all
from storage.deal_records import DealStatus

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STAGES = ["New lead", "Qualification", "Proposal", "Negotiation", "Contract"]


def make_deals(n: int, seed: int = 7) -> list[Deal]:
    rnd = random.Random(seed)
    deals = []
    for i in range(n):
        created = NOW - timedelta(days=rnd.uniform(1, 60))
        quiet = min((NOW - created).total_seconds(), rnd.expovariate(1 / 3) * 86400)  # most deals talked recently
        span = (NOW - created).total_seconds() - quiet
        events: list[DealEvent] = []
        stage_i = 0
        for _ in range(rnd.randint(5, 35)):
            at = created + timedelta(seconds=span * rnd.random() ** 0.5)
            kind = rnd.choice([EventKind.CALL, EventKind.CALL, EventKind.MESSAGE, EventKind.MESSAGE, EventKind.TASK,
                               EventKind.STAGE_CHANGE])
            if kind is EventKind.CALL:
                events.append(DealEvent(kind, at, duration_s=rnd.randint(30, 1800), direction="out"))
            elif kind is EventKind.MESSAGE:
                events.append(DealEvent(kind, at, direction="in", text="hi"))
            elif kind is EventKind.TASK:
                done = rnd.random() < 0.8
                due = at + timedelta(days=rnd.uniform(0, 7))
                events.append(DealEvent(kind, at, text="follow up", due_at=due, done=done,
                                        done_at=due if done else None))
            else:
                nxt = min(stage_i + 1, len(STAGES) - 1)
                events.append(DealEvent(kind, at, from_stage=STAGES[stage_i], to_stage=STAGES[nxt]))
                stage_i = nxt
        deals.append(Deal(i + 1, f"Deal {i + 1}", created, STAGES[stage_i], Decimal(rnd.randint(1, 150) * 1000),
                          "USD", DealStatus.ACTIVE, owner_ref=f"m{i % 50}", events=events))
    return deals


def naive(deals: list[Deal], now: datetime, rules: DealRules) -> list[tuple[int, str]]:
    """One filtered, re-sorted pass per metric (the straightforward way), same rules."""
    out = []
    for d in deals:
        ev = sorted(d.events, key=lambda e: e.at)
        calls = [e for e in ev if e.kind == EventKind.CALL]
        msgs = [e for e in ev if e.kind == EventKind.MESSAGE]
        moves = [e for e in ev if e.kind == EventKind.STAGE_CHANGE]
        tasks = [e for e in ev if e.kind == EventKind.TASK]
        done = [e for e in tasks if e.done]
        overdue = [e for e in tasks if not e.done and e.due_at and e.due_at < now]
        activity = sorted([e.at for e in calls + msgs + moves] + [e.done_at for e in done if e.done_at]
                          + [d.created_at])
        silent = (now - min(activity[-1], now)).total_seconds() / 86400
        contacts = sorted(e.at for e in calls + msgs)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(contacts)]
        _ = sum(gaps) / len(gaps) if gaps else None
        _ = sum(e.duration_s or 0 for e in calls) / 60
        entered = [e.at for e in moves if e.to_stage == d.stage] or [d.created_at]
        _ = (now - max(entered)).total_seconds() / 86400
        _ = len(done) / len(tasks) if tasks else None
        inactive = silent >= rules.stale_days
        high = silent >= rules.high_inactive_days or (overdue and inactive) or (
            d.budget >= rules.large_budget and (inactive or overdue))
        out.append((d.id, "high" if high else ("medium" if inactive or overdue else "low")))
    return out


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


async def ai_path(n: int, latency: float, limits: list[int]) -> list[tuple[int, float, int, int]]:
    from coaching.ai import AiClient
    from tests.deals_support import good_analysis
    from tests.fakes import FakeOpenAI

    items = assess_all(make_deals(n, seed=11), NOW)
    rows = []
    async with FakeOpenAI() as server:
        for limit in limits:
            server.reply_json(good_analysis().model_dump(mode="json"), delay=latency, times=n)
            client = AiClient(server.settings(openai_max_concurrency=limit, openai_timeout=30.0))
            coach = DealCoach(client, None, concurrency=limit, timeout=30.0)
            t0 = time.perf_counter()
            results = await coach.analyze_many(items, "en", NOW)
            rows.append((limit, time.perf_counter() - t0, sum(r.source == "ai" for r in results), n))
            await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--ai-deals", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per fake model answer")
    args = parser.parse_args()
    rules = DealRules()
    deals = make_deals(args.deals)
    n_events = sum(len(d.events) for d in deals)

    t_naive, base = timed(naive, deals, NOW, rules)
    t_ours, ours = timed(assess_all, deals, NOW, rules)
    t_text, _ = timed(lambda items: [rule_analysis(a, "en") for a in items], ours)
    agree = sum(1 for a in ours if dict(base)[a.deal.id] == a.priority.value)
    high = sum(1 for a in ours if a.priority is Priority.HIGH)

    print(f"\nRules path: {args.deals:,} deals, {n_events:,} events")
    print(f"{'what':<44}{'seconds':>10}{'deals/s':>12}")
    print(f"{'naive baseline (a pass per metric)':<44}{t_naive:>10.3f}{args.deals / t_naive:>12,.0f}")
    print(f"{'assess_all (one pass: metrics+stale+priority)':<44}{t_ours:>10.3f}{args.deals / t_ours:>12,.0f}")
    print(f"{'rule_analysis text for every deal':<44}{t_text:>10.3f}{args.deals / t_text:>12,.0f}")
    print(f"{'total rules path (assess + text)':<44}{t_ours + t_text:>10.3f}")
    print(f"speed-up vs baseline: {t_naive / t_ours:.2f}x; target < 2 s: {'met' if t_ours + t_text < 2 else 'MISSED'}")
    print(f"priority agreement with baseline: {agree}/{len(ours)} (high: {high}; baseline lacks medium-only rules)")

    rows = asyncio.run(ai_path(args.ai_deals, args.latency, [1, 4, 16]))
    print(f"\nAI path: {args.ai_deals} deals, fake model answers in {args.latency * 1000:.0f} ms")
    print(f"{'concurrency limit':<20}{'seconds':>10}{'deals/s':>10}{'AI answers':>12}{'vs limit 1':>12}")
    base_t = rows[0][1]
    for limit, secs, ok, n in rows:
        print(f"{limit:<20}{secs:>10.2f}{n / secs:>10.1f}{ok:>12}{base_t / secs:>11.1f}x")


if __name__ == "__main__":
    main()
