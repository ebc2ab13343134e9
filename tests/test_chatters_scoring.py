"""Scores, tiers, trends, streaks, traffic, imbalance and the funnel on hand-computed examples."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from coaching.chatter_metrics import DayMetrics, Kpi
from coaching.scoring import ScoringConfig, Tier, references, score_day, tier_for
from coaching.trends import Arrow, Traffic, funnel, imbalance, streak, traffic, trend

D = date(2026, 11, 22)


def day(cid: int, sales: str, hours: float, cvr: float, unlock: float, golden: float, msgs: float,
        reply: float | None) -> DayMetrics:
    return DayMetrics(cid, D, Decimal(sales), cvr, unlock, golden, msgs, reply, hours=hours)


A = day(1, "200", 8, 0.10, 0.40, 0.20, 40, 60)
B = day(2, "100", 8, 0.05, 0.20, 0.10, 20, 120)


def test_hand_computed_scores() -> None:
    config = ScoringConfig()
    refs = references([A, B], config.weights)
    # medians of two values are their means
    assert refs[Kpi.SALES_PER_HR] == pytest.approx(18.75) and refs[Kpi.REPLY_TIME] == pytest.approx(90)
    a, b = score_day(A, refs, config), score_day(B, refs, config)
    assert a is not None and b is not None
    # A: every "higher" KPI is 4/3 of the median → 100 × (4/3) / 1.5 = 88.89; reply 90/60 = 1.5 → 100
    assert a.parts[Kpi.CVR] == pytest.approx(88.888, abs=0.01)
    assert a.value == pytest.approx(0.85 * 88.8889 + 0.15 * 100, abs=0.01)  # 90.56
    assert a.tier is Tier.TOP and a.rounded == 91
    # B: 2/3 of the median → 44.44; reply 90/120 → 50
    assert b.value == pytest.approx(0.85 * 44.4444 + 0.15 * 50, abs=0.01)  # 45.28
    assert b.tier is Tier.FAIR


def test_missing_kpi_is_left_out_not_zero() -> None:
    config = ScoringConfig()
    refs = references([A, B], config.weights)
    no_reply = day(2, "100", 8, 0.05, 0.20, 0.10, 20, None)
    s = score_day(no_reply, refs, config)
    assert s is not None and Kpi.REPLY_TIME not in s.parts
    assert s.value == pytest.approx(44.444, abs=0.01)


def test_weights_from_config() -> None:
    config = ScoringConfig(weights={Kpi.SALES_PER_HR: 1.0})
    s = score_day(A, references([A, B], config.weights), config)
    assert s is not None and s.value == pytest.approx(88.889, abs=0.01)
    with pytest.raises(ValueError):
        ScoringConfig(weights={Kpi.CVR: -1})


def test_day_off_is_not_scored_nor_a_reference() -> None:
    config = ScoringConfig()
    off = DayMetrics(3, D, Decimal("5000"), 0.9, 0.9, 0.9, 900, 1, hours=0.5)
    assert off.day_off and score_day(off, {}, config) is None
    assert references([A, B, off], config.weights) == references([A, B], config.weights)
    assert not DayMetrics(4, D, hours=None).day_off  # unknown hours are not a day off


@pytest.mark.parametrize(
    ("score", "tier"),
    [(100, Tier.TOP), (80, Tier.TOP), (79.5, Tier.TOP), (79.4, Tier.GOOD), (60, Tier.GOOD), (59, Tier.FAIR),
     (40, Tier.FAIR), (39, Tier.LOW), (20, Tier.LOW), (19.4, Tier.CRITICAL), (0, Tier.CRITICAL)],
)
def test_tiers(score: float, tier: Tier) -> None:
    assert tier_for(score) is tier


def test_scores_are_clamped() -> None:
    config = ScoringConfig()
    star = day(1, "10000", 1, 1.0, 1.0, 1.0, 500, 1)
    s = score_day(star, references([A, B], config.weights), config)
    assert s is not None and s.value == 100


def test_trend_arrows() -> None:
    assert trend(110.1, [100] * 7) is Arrow.UP
    assert trend(110, [100] * 7) is None
    assert trend(89, [100, None, 100]) is Arrow.DOWN
    assert trend(None, [100]) is None and trend(5, []) is None


def test_streaks() -> None:
    assert streak([1, 2, 3, 4]).label == "3d improving"  # type: ignore[union-attr]
    assert streak([4, 3, 2, 1]).label == "3d declining"  # type: ignore[union-attr]
    assert streak([1, 2, 3]) is None
    assert streak([1, 3, 2, 3, 4, 5]).days == 3  # type: ignore[union-attr]
    assert streak([1, 1, 1, 1]) is None


def test_traffic_and_imbalance() -> None:
    assert traffic(13, 10) is Traffic.HIGH
    assert traffic(12.5, 10) is Traffic.NORMAL
    assert traffic(7, 10) is Traffic.LOW
    assert traffic(None, 10) is None
    assert imbalance([10, 20]) == 2.0
    assert imbalance([10, 19.9]) is None
    assert imbalance([10, None, 0]) is None


def test_funnel_bottleneck() -> None:
    f = funnel(100, 50, 10, Decimal("200"), (0.5, 0.4, 20.0))
    assert f.rates == (0.5, 0.2, 20.0)
    assert f.bottleneck == "Unlock rate"
    assert funnel(100, 50, 20, Decimal("400"), (0.5, 0.4, 20.0)).bottleneck is None


def test_window_excludes_old_days() -> None:
    from coaching.scoring import window

    old = DayMetrics(1, D - timedelta(days=14), Decimal("1"), hours=5)
    recent = DayMetrics(1, D - timedelta(days=13), Decimal("1"), hours=5)
    assert window([old, recent], D, 14) == [recent]
