"""The COO dashboard: one self-contained HTML file (inline CSS and SVG, no CDN, no script needed).

A legend first (what the arrows, sparklines, bars and badges mean), then a tab per team (CSS
radio tabs) with the team summary, "who to coach today" (the same three the team lead's briefing
names, and why), a daily sales chart over the days there are numbers for, traffic bars, and a
card per chatter: score and tier, days since the last coaching, KPIs with trend arrows, a 7-day
Sales/hr sparkline, streak badge, and — behind "Details" — the funnel and red flags. Days off and
missing numbers are said in plain words ("Day off", "No data available").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape

from coaching.briefings import pick, why
from coaching.cards import COACHING_OVERDUE_DAYS, STATUS_TEXT, Card, Scorer, Status, TeamView, fmt_kpi
from coaching.chatter_metrics import KPI_LABELS, LOWER_IS_BETTER, Kpi
from coaching.scoring import Tier
from coaching.trends import FUNNEL_STAGES, Arrow, Traffic
from storage.chatters import LogEntry

TIER_COLOURS = {Tier.TOP: "#0f9d58", Tier.GOOD: "#4caf50", Tier.FAIR: "#f4b400", Tier.LOW: "#ef6c00",
                Tier.CRITICAL: "#d93025"}
TRAFFIC_COLOURS = {Traffic.HIGH: "#2e7d32", Traffic.NORMAL: "#1a73e8", Traffic.LOW: "#f9a825"}

CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
color:#1f2933;background:#f4f6f8}header{background:#1f2933;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}header p{margin:2px 0 0;color:#cbd2d9;font-size:13px}
main{padding:16px 24px}.tabs>input{display:none}.tabs>label{display:inline-block;padding:8px 16px;
margin-right:4px;background:#e4e7eb;border-radius:8px 8px 0 0;cursor:pointer;font-weight:600}
.tabs>input:checked+label{background:#fff;color:#1a73e8}.panel{display:none;background:#fff;
border-radius:0 8px 8px 8px;padding:16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.summary{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}.tile{flex:1 1 140px;background:#f8fafc;
border:1px solid #e4e7eb;border-radius:8px;padding:10px 12px}.tile b{display:block;font-size:20px}
.tile span{color:#616e7c;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.warn{background:#fff4e5;border:1px solid #f9a825;color:#8a5300;border-radius:8px;padding:8px 12px;
margin-bottom:12px}.charts{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-bottom:16px}
.chart{border:1px solid #e4e7eb;border-radius:8px;padding:10px}.chart h3,.reports h3{margin:0 0 6px;
font-size:14px}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.card{border:1px solid #e4e7eb;border-radius:10px;padding:12px;background:#fff}.card.off{background:#f8fafc;
color:#616e7c}.top{display:flex;justify-content:space-between;align-items:flex-start;gap:8px}
.name{font-weight:700;font-size:15px}.score{font-size:26px;font-weight:800;line-height:1}
.tier{font-size:11px;font-weight:700;color:#fff;border-radius:10px;padding:2px 8px;display:inline-block}
.badge{display:inline-block;font-size:11px;border-radius:10px;padding:2px 8px;margin:4px 4px 0 0}
.up{color:#0f9d58}.down{color:#d93025}.badge.improving{background:#e6f4ea;color:#0f9d58}
.badge.declining{background:#fce8e6;color:#d93025}.badge.flag{background:#fff4e5;color:#8a5300}
table.kpis{width:100%;border-collapse:collapse;margin-top:8px;font-size:13px}table.kpis td{padding:2px 0}
table.kpis td:last-child{text-align:right;font-variant-numeric:tabular-nums}details{margin-top:8px}
summary{cursor:pointer;color:#1a73e8}.status{font-size:15px;margin-top:10px}.muted{color:#616e7c;font-size:12px}
.reports ul{margin:0;padding-left:18px}.legend{display:flex;flex-wrap:wrap;gap:6px 22px;background:#fff;
border:1px solid #e4e7eb;border-radius:8px;padding:8px 12px;margin-bottom:14px;font-size:12px;color:#3e4c59}
.legend b{color:#1f2933}.legend .item{display:flex;align-items:center;gap:6px}.sw{display:inline-block;width:12px;
height:12px;border-radius:3px}.coach{background:#fff8e1;border:1px solid #f4b400;border-radius:8px;padding:10px 12px;
margin-bottom:12px}.coach h3{margin:0 0 4px;font-size:14px}.coach ol{margin:0;padding-left:20px}
.badge.pick{background:#f4b400;color:#1f2933;font-weight:700}.card[data-pick]{border:2px solid #f4b400}
.since{font-size:12px;color:#616e7c;margin-top:2px}.since.overdue{color:#d93025;font-weight:600}
"""

# Every word the dashboard shows, in one place (the message catalog takes them from here).
LEGEND_TITLE = "How to read this"
LEGEND_ARROWS = ("vs the chatter's own 7-day average, shown when more than 10 % off; "
                 "green is better, red is worse (for reply time, down is better)")
LEGEND_SPARK = "Sales/hr over the last 7 days; the dot is the latest day, gaps are days off"
LEGEND_BARS = "Traffic bars, fans per hour:"
LEGEND_TRAFFIC = {Traffic.HIGH: "more than 25 % above the team average", Traffic.NORMAL: "within ±25 %",
                  Traffic.LOW: "more than 25 % below"}
LEGEND_AVG = "team average"
LEGEND_PICK = "one of the three to coach today (the team lead's briefing names the same)"
COACH_TITLE = "Who to coach today"
COACH_NONE = "Nobody to coach from these numbers (no one worked, or no numbers yet)."
COACH_BADGE = "Coach today #{n}"
NEVER_COACHED = "Never coached"
COACHED_TODAY = "Coached today"
COACHED_AGO = "Last coached {n} day{s} ago"
DAILY_TITLE = "Daily sales, {first:%d %b} – {last:%d %b} ({n} day{s})"
DAILY_ONE = "Daily sales, {first:%d %b}"
DAILY_NONE = "Daily sales"


def _panel_css(n: int) -> str:
    return "".join(f"#t{i}:checked~#p{i}{{display:block}}" for i in range(n))


# -- SVG ------------------------------------------------------------------------------------------


def sparkline(values: Sequence[float | None], width: int = 110, height: int = 30,
              label: str = "7-day Sales per hour") -> str:
    known = [v for v in values if v is not None]
    if not known:
        return f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="no data"></svg>'
    lo, hi = min(known), max(known)
    span = (hi - lo) or 1.0
    step = width / max(1, len(values) - 1)
    segments: list[list[str]] = [[]]
    dots = []
    for i, v in enumerate(values):
        if v is None:
            segments.append([])
            continue
        x, y = i * step, height - 3 - (v - lo) / span * (height - 6)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        dots.append((x, y))
    lines = "".join(f'<polyline points="{" ".join(s)}" fill="none" stroke="#1a73e8" stroke-width="1.8"/>'
                    for s in segments if len(s) > 1)
    lines += "".join(f'<circle cx="{s[0].split(",")[0]}" cy="{s[0].split(",")[1]}" r="1.8" fill="#1a73e8"/>'
                     for s in segments if len(s) == 1)
    last = dots[-1]
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{label}">{lines}<circle cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.5" '
            f'fill="#1a73e8"/></svg>')


def line_chart(points: Sequence[tuple[date, float | None]], width: int = 520, height: int = 160) -> str:
    known = [v for _, v in points if v is not None]
    if not known:
        return "<p class=muted>No data available.</p>"
    hi = max(known) or 1.0
    left, bottom = 44, 20
    w, h = width - left - 6, height - bottom - 8
    step = w / max(1, len(points) - 1)
    if len(points) == 1:  # one day of numbers: a dot in the middle, not a line to nowhere
        coords = [(left + w / 2, 8 + h - (known[0] / hi) * h)]
    else:
        coords = [(left + i * step, 8 + h - (v / hi) * h) for i, (_, v) in enumerate(points) if v is not None]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1a73e8"/>' for x, y in coords) if len(coords) < 3 \
        else ""
    area = f"{coords[0][0]:.1f},{8 + h} {path} {coords[-1][0]:.1f},{8 + h}"
    grid = "".join(
        f'<line x1="{left}" x2="{left + w}" y1="{8 + h - f * h:.1f}" y2="{8 + h - f * h:.1f}" stroke="#e4e7eb"/>'
        f'<text x="{left - 4}" y="{12 + h - f * h:.1f}" text-anchor="end" font-size="10" fill="#616e7c">'
        f"${hi * f:,.0f}</text>" for f in (0, 0.5, 1)
    )
    first, last = points[0][0], points[-1][0]
    labels = (f'<text x="{left}" y="{height - 4}" font-size="10" fill="#616e7c">{first:%d %b}</text>'
              f'<text x="{left + w}" y="{height - 4}" font-size="10" fill="#616e7c" text-anchor="end">'
              f"{last:%d %b}</text>") if first != last else (
        f'<text x="{left + w / 2:.1f}" y="{height - 4}" font-size="10" fill="#616e7c" text-anchor="middle">'
        f"{first:%d %b}</text>")
    return (f'<svg width="100%" viewBox="0 0 {width} {height}" role="img" aria-label="daily team sales">{grid}'
            f'<polygon points="{area}" fill="#1a73e8" fill-opacity=".12"/>'
            f'<polyline points="{path}" fill="none" stroke="#1a73e8" stroke-width="2"/>{dots}{labels}</svg>')


def traffic_bars(cards: Sequence[Card], team_avg: float | None, width: int = 520) -> str:
    rows = sorted(((c.chatter.name, c.metrics.fans_per_hr, c.traffic) for c in cards
                   if c.metrics is not None and c.metrics.fans_per_hr is not None and c.status is Status.SCORED),
                  key=lambda r: -(r[1] or 0))
    if not rows:
        return "<p class=muted>No data available.</p>"
    hi = max(r[1] or 0 for r in rows) or 1.0
    label_w, bar_h, gap = 130, 16, 6
    w = width - label_w - 50
    parts = []
    for i, (name, value, level) in enumerate(rows):
        y = i * (bar_h + gap)
        colour = TRAFFIC_COLOURS.get(level or Traffic.NORMAL, "#1a73e8")
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="11">{escape(name[:20])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(2.0, (value or 0) / hi * w):.1f}" height="{bar_h}" rx="3" '
            f'fill="{colour}"><title>{escape(name)}: {value:.1f} fans/hr ({(level or Traffic.NORMAL).value})'
            f"</title></rect>"
            f'<text x="{label_w + (value or 0) / hi * w + 4:.1f}" y="{y + 12}" font-size="11">{value:.1f}</text>'
        )
    height = len(rows) * (bar_h + gap)
    if team_avg:
        x = label_w + team_avg / hi * w
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#1f2933" stroke-dasharray="3 3">'
                     f"<title>team average {team_avg:.1f} fans/hr</title></line>")
    return (f'<svg width="100%" viewBox="0 0 {width} {height}" role="img" aria-label="fans per hour">'
            + "".join(parts) + "</svg>")


def funnel_svg(card: Card, width: int = 236) -> str:
    f = card.funnel
    if f is None or not f.fans:
        return "<p class=muted>No funnel data.</p>"
    stages = [("Fans", float(f.fans)), ("PPVs sent", float(f.ppvs_sent or 0)),
              ("Unlocked", float(f.ppvs_unlocked or 0))]
    hi = max(v for _, v in stages) or 1.0
    parts = []
    for i, (label, v) in enumerate(stages):
        bw = max(2.0, v / hi * (width - 110))
        parts.append(f'<text x="0" y="{i * 22 + 13}" font-size="11">{label}</text>'
                     f'<rect x="70" y="{i * 22}" width="{bw:.1f}" height="16" rx="3" fill="#8ab4f8"/>'
                     f'<text x="{74 + bw:.1f}" y="{i * 22 + 13}" font-size="11">{v:.0f}</text>')
    svg = (f'<svg width="{width}" height="66" viewBox="0 0 {width} 66" role="img" aria-label="funnel">'
           f'{"".join(parts)}</svg>')
    rates = []
    for label, rate in zip(FUNNEL_STAGES, f.rates, strict=True):
        if rate is None:
            continue
        text = f"${rate:,.2f}" if label == "Sales per unlock" else (f"{rate * 100:.0f}%" if label == "Unlock rate"
                                                                  else f"{rate:.2f}")
        rates.append(f"{label}: {text}")
    sales = f"Sales ${f.sales or Decimal(0):,.2f}"
    bottleneck = f'<div class="badge flag">Bottleneck: {escape(f.bottleneck)}</div>' if f.bottleneck else ""
    return f'{svg}<div class="muted">{" · ".join(rates)} · {sales}</div>{bottleneck}'


# -- HTML -----------------------------------------------------------------------------------------


def _arrow(kpi: Kpi, arrow: Arrow | None) -> str:
    if arrow is None:
        return ""
    good = (arrow is Arrow.UP) != (kpi in LOWER_IS_BETTER)
    return f' <span class="{"up" if good else "down"}">{"▲" if arrow is Arrow.UP else "▼"}</span>'


def coached_text(card: Card) -> tuple[str, bool]:
    """"Last coached 3 days ago" and whether that is overdue (or never)."""
    since = card.days_since_coaching
    if since is None:
        return NEVER_COACHED, True
    if since == 0:
        return COACHED_TODAY, False
    return COACHED_AGO.format(n=since, s="" if since == 1 else "s"), since >= COACHING_OVERDUE_DAYS


def card_html(card: Card, rank: int | None = None) -> str:
    c = card.chatter
    coached, overdue = coached_text(card)
    since = f'<div class="since{" overdue" if overdue else ""}">{coached}</div>'
    if card.status is not Status.SCORED or card.score is None or card.metrics is None:
        text = STATUS_TEXT.get(card.status, "No data available")
        return (f'<div class="card off" data-status="{card.status.value}"><div class="name">{escape(c.name)}</div>'
                f'{since}<div class="status">{text}</div></div>')
    tier = card.score.tier
    badges = f'<span class="badge pick">{COACH_BADGE.format(n=rank)}</span>' if rank else ""
    if card.streak:
        kind = "improving" if card.streak.improving else "declining"
        badges += f'<span class="badge {kind}">{card.streak.label}</span>'
    if card.traffic:
        badges += f'<span class="badge" style="background:#e8f0fe">traffic {card.traffic.value}</span>'
    rows = "".join(
        f"<tr><td>{KPI_LABELS[k]}</td><td>{fmt_kpi(k, card.metrics.kpi(k))}{_arrow(k, card.arrows.get(k))}</td></tr>"
        for k in Kpi if card.metrics.kpi(k) is not None
    )
    flags = "".join(f'<span class="badge flag">{escape(str(f))}</span>' for f in card.red_flags)
    picked = f' data-pick="{rank}"' if rank else ""
    return (
        f'<div class="card" data-status="scored"{picked}><div class="top"><div><div class="name">{escape(c.name)}'
        f"</div>{since}{sparkline([v for _, v in card.spark])}</div>"
        f'<div style="text-align:right"><div class="score">{card.score.rounded}</div>'
        f'<span class="tier" style="background:{TIER_COLOURS[tier]}">{tier.value}</span></div></div>'
        f"<div>{badges}</div><table class=kpis>{rows}</table>"
        f"<details><summary>Details</summary>{funnel_svg(card)}{flags}</details></div>"
    )


def daily_sales(view: TeamView, scorer: Scorer, days: int) -> list[tuple[date, float | None]]:
    """Team sales per day, from the first day with numbers (at most `days` back) to the view's day."""
    team_days = sorted({m.day for m in scorer.by_team.get(view.name, []) if m.sales is not None
                        and view.day - timedelta(days=days - 1) <= m.day <= view.day})
    if not team_days:
        return []
    out = []
    for n in range((view.day - team_days[0]).days, -1, -1):
        d = view.day - timedelta(days=n)
        day_rows = [m for m in scorer.team_days(view.name, d) if m.sales is not None and not m.day_off]
        out.append((d, float(sum((m.sales or Decimal(0) for m in day_rows), Decimal(0))) if day_rows else None))
    return out


def coach_today(picks: Sequence[Card]) -> str:
    if not picks:
        return f'<div class="coach"><h3>{COACH_TITLE}</h3><p class=muted>{COACH_NONE}</p></div>'
    items = "".join(f"<li><b>{escape(c.chatter.name)}</b> — {escape(why(c))}</li>" for c in picks)
    return f'<div class="coach" data-part="coach-today"><h3>{COACH_TITLE}</h3><ol>{items}</ol></div>'


def legend() -> str:
    spark = sparkline([3.0, 4.0, None, 3.5, 5.0, 4.5, 6.0], width=60, height=18, label="example sparkline")
    bars = " · ".join(f'<span class="sw" style="background:{TRAFFIC_COLOURS[t]}"></span> {LEGEND_TRAFFIC[t]}'
                      for t in (Traffic.HIGH, Traffic.NORMAL, Traffic.LOW))
    return (
        f'<div class="legend" data-part="legend"><b>{LEGEND_TITLE}</b>'
        f'<span class="item"><span class="up">▲</span><span class="down">▼</span> {LEGEND_ARROWS}</span>'
        f'<span class="item">{spark} {LEGEND_SPARK}</span>'
        f'<span class="item">{LEGEND_BARS} {bars} · '
        f'<svg width="14" height="12"><line x1="7" x2="7" y1="0" y2="12" stroke="#1f2933" stroke-dasharray="3 3"/>'
        f"</svg> {LEGEND_AVG}</span>"
        f'<span class="item"><span class="badge pick">{COACH_BADGE.format(n=1)}</span> {LEGEND_PICK}</span></div>'
    )


def team_panel(i: int, view: TeamView, scorer: Scorer, days: int, reports: Sequence[tuple[str, LogEntry]]) -> str:
    tiles = [
        ("Total sales", f"${view.total_sales:,.2f}"),
        ("Avg $/hr", fmt_kpi(Kpi.SALES_PER_HR, view.avg_sales_per_hr)),
        ("Avg CVR", fmt_kpi(Kpi.CVR, view.avg_cvr)),
        ("Total fans", f"{view.total_fans:,}"),
        ("Active", f"{view.worked} / {view.total}"),
    ]
    summary = "".join(f'<div class="tile"><span>{k}</span><b>{v}</b></div>' for k, v in tiles)
    warn = (f'<div class="warn">⚠ Traffic imbalance: the busiest chatter handles {view.imbalance:.1f}× the fans/hr '
            f"of the quietest. Consider moving accounts.</div>" if view.imbalance else "")
    daily = daily_sales(view, scorer, days)
    if len(daily) > 1:
        title = DAILY_TITLE.format(first=daily[0][0], last=daily[-1][0], n=len(daily), s="s")
    else:
        title = DAILY_ONE.format(first=daily[0][0]) if daily else DAILY_NONE
    picks = pick(view.cards)
    ranks = {c.chatter.id: n for n, c in enumerate(picks, 1)}
    order = {Status.SCORED: 0, Status.DAY_OFF: 1, Status.NO_DATA: 2}
    cards = sorted(view.cards, key=lambda c: (ranks.get(c.chatter.id, 99), order[c.status],
                                              -(c.score.value if c.score else 0), c.chatter.name))
    report_html = ""
    if reports:
        items = "".join(f"<li><b>{escape(name)}</b> ({e.at:%d %b}): {escape(e.notes[:300])}</li>"
                        for name, e in reports)
        report_html = (f'<div class="reports chart" style="margin-bottom:16px"><h3>Reports from team leads</h3>'
                       f"<ul>{items}</ul></div>")
    return (
        f'<section class="panel" id="p{i}" data-team="{escape(view.name)}"><div class="summary">{summary}</div>{warn}'
        f"{coach_today(picks)}"
        f'<div class="charts"><div class="chart"><h3>{title}</h3>{line_chart(daily)}</div>'
        f'<div class="chart"><h3>Traffic: fans per hour</h3>{traffic_bars(view.cards, view.avg_fans_per_hr)}'
        f"</div></div>"
        f'{report_html}<div class="cards">{"".join(card_html(c, ranks.get(c.chatter.id)) for c in cards)}</div>'
        f"</section>"
    )


def render_dashboard(views: Sequence[TeamView], scorer: Scorer, generated: datetime, days: int = 30,
                     reports: dict[str, list[tuple[str, LogEntry]]] | None = None) -> str:
    reports = reports or {}
    tabs = "".join(
        f'<input type="radio" name="tab" id="t{i}"{" checked" if i == 0 else ""}>'
        f'<label for="t{i}">{escape(v.name)}</label>' for i, v in enumerate(views)
    )
    panels = "".join(team_panel(i, v, scorer, days, reports.get(v.name, [])) for i, v in enumerate(views))
    day = views[0].day if views else None
    subtitle = (f"Numbers from {day:%A %d %B %Y}" if day else "No data available") + (
        f" · generated {generated:%d %b %H:%M} UTC")
    body = f'{legend()}<div class="tabs">{tabs}{panels}</div>' if views else "<p>No teams yet.</p>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1"><title>Chatter coaching dashboard</title>'
        f"<style>{CSS}{_panel_css(len(views))}</style></head><body>"
        f"<header><h1>Chatter coaching</h1><p>{subtitle}</p></header><main>{body}</main></body></html>"
    )
