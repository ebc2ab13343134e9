"""The Monday report: one week of the business in a page, a chat-sized summary, and inline SVG charts.

Pure: figures in (`storage.weekly.WeekData`, chatter scores at both ends of the week, extra
sections), text and SVG out. Other plugins add their own part of the report through
`add_section` (e.g. a playbooks plugin its ROI table): each section is a title, column headings
and rows, computed for the week when the report is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App
    from storage.weekly import WeekData


@dataclass(frozen=True, slots=True)
class Section:
    """A part of the report another plugin contributes (e.g. playbook ROI)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    chart: str = ""
    """Inline SVG drawn from the section's own figures (the report escapes nothing inside it)."""


SectionSource = Callable[[datetime, datetime], Awaitable[Section | None]]


def add_section(app: App, name: str, source: SectionSource) -> None:
    """Register `await source(start, end) -> Section | None` to appear in every weekly report."""
    sections: dict[str, SectionSource] = app.deps.setdefault("weekly_sections", {})
    if name in sections:
        raise ValueError(f"weekly report section {name!r} registered twice")
    sections[name] = source


def section_sources(app: App) -> dict[str, SectionSource]:
    return app.deps.get("weekly_sections", {})


@dataclass(frozen=True, slots=True)
class ChatterChange:
    name: str
    team: str
    before: int | None
    after: int | None

    @property
    def delta(self) -> int | None:
        return None if self.before is None or self.after is None else self.after - self.before


@dataclass(slots=True)
class WeeklyReport:
    week: str
    """ISO week, e.g. 2026-W48."""
    first_day: date
    last_day: date
    timezone: str
    data: WeekData
    chatters: list[ChatterChange] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Parts not in this deployment, said in words (e.g. "playbooks: no playbook module yet")."""

    @property
    def sales(self) -> Decimal:
        return sum((s.sales for s in self.data.stores), Decimal("0"))

    @property
    def orders(self) -> int:
        return sum(s.orders for s in self.data.stores)

    @property
    def visitors(self) -> int:
        return sum(s.visitors for s in self.data.stores)

    @property
    def coaching_sent(self) -> int:
        return sum(r.sent for r in self.data.coaching)

    @property
    def coaching_answered(self) -> int:
        return sum(r.answered for r in self.data.coaching)

    def improved(self, n: int = 3) -> list[ChatterChange]:
        ups = [c for c in self.chatters if c.delta is not None and c.delta > 0]
        return sorted(ups, key=lambda c: (-(c.delta or 0), c.name))[:n]

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]

    def sales_by_day(self) -> list[tuple[date, Decimal]]:
        totals: dict[date, Decimal] = {}
        for s in self.data.stores:
            for day, value in s.by_day.items():
                totals[day] = totals.get(day, Decimal("0")) + value
        return [(d, totals.get(d, Decimal("0"))) for d in self.days()]


def money(value: Decimal) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def summary_text(report: WeeklyReport, link: str | None) -> str:
    """A few lines for the COO's chat; the page has the rest."""
    d = report.data
    lines = [f"<b>Weekly report {escape(report.week)}</b> ({report.first_day:%a %d %b} – {report.last_day:%a %d %b})"]
    lines.append(f"Store: {money(report.sales)} from {report.orders} orders, {report.visitors} customers.")
    lines.append(f"Loyalty: {d.signups} sign-ups, {d.points_issued:,} points issued, {d.points_redeemed:,} redeemed.")
    if d.coaching:
        rate = f" ({report.coaching_answered * 100 // report.coaching_sent}%)" if report.coaching_sent else ""
        who = f"{len(d.coaching)} budtender{'s' if len(d.coaching) != 1 else ''}"
        lines.append(f"Coaching: {report.coaching_sent} sent to {who}, "
                     f"{report.coaching_answered} answered{rate}.")
    ups = report.improved()
    if ups:
        lines.append("Chatters who improved: " + ", ".join(f"{escape(c.name)} +{c.delta}" for c in ups) + ".")
    if d.deals:
        won, lost, stale = (sum(r.won for r in d.deals), sum(r.lost for r in d.deals), sum(r.stale for r in d.deals))
        lines.append(f"Deals: {won} won, {lost} lost, {stale} stale.")
    for s in report.sections:
        lines.append(f"{escape(s.title)}: {len(s.rows)} rows in the report.")
    if link:
        lines.append(f'<a href="{escape(link, quote=True)}">Full report</a>')
    return "\n".join(lines)


def bar_chart(points: Sequence[tuple[str, float]], width: int = 560, height: int = 180, colour: str = "#1a73e8",
              label: str = "chart") -> str:
    """Vertical bars with their values, as inline SVG (no script, prints well)."""
    if not points:
        return ""
    top = max((v for _, v in points), default=0) or 1
    pad_l, pad_b, pad_t = 8, 22, 16
    step = (width - pad_l * 2) / len(points)
    bar = step * 0.62
    plot = height - pad_b - pad_t
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(label, quote=True)}">',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_l}" y2="{height - pad_b}" stroke="#cbd2d9"/>']
    for i, (name, value) in enumerate(points):
        h = plot * (value / top) if top else 0
        x = pad_l + i * step + (step - bar) / 2
        y = height - pad_b - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" rx="3" fill="{colour}">'
                     f'<title>{escape(name)}: {value:,.0f}</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" font-size="10" text-anchor="middle" '
                     f'fill="#3e4c59">{value:,.0f}</text>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle" '
                     f'fill="#616e7c">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def paired_bars(rows: Sequence[tuple[str, int, int]], width: int = 560, colours: tuple[str, str] = ("#1a73e8",
                "#0f9d58"), legend: tuple[str, str] = ("sent", "answered")) -> str:
    """Horizontal pairs of bars per name (e.g. coaching sent and answered), as inline SVG."""
    if not rows:
        return ""
    top = max(max(a, b) for _, a, b in rows) or 1
    name_w, row_h, bar_h = 140, 30, 10
    height = row_h * len(rows) + 24
    plot = width - name_w - 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{legend[0]} and {legend[1]} per person">']
    for i, (name, a, b) in enumerate(rows):
        y = 6 + i * row_h
        parts.append(f'<text x="0" y="{y + 14}" font-size="12" fill="#1f2933">{escape(name[:22])}</text>')
        for j, (value, colour) in enumerate(((a, colours[0]), (b, colours[1]))):
            w = plot * value / top
            yy = y + j * (bar_h + 2)
            parts.append(f'<rect x="{name_w}" y="{yy}" width="{w:.1f}" height="{bar_h}" rx="2" fill="{colour}"/>')
            parts.append(f'<text x="{name_w + w + 4:.1f}" y="{yy + 9}" font-size="10" fill="#3e4c59">{value}</text>')
    y = height - 8
    parts.append(f'<rect x="{name_w}" y="{y - 9}" width="10" height="10" fill="{colours[0]}"/>'
                 f'<text x="{name_w + 14}" y="{y}" font-size="11">{legend[0]}</text>'
                 f'<rect x="{name_w + 90}" y="{y - 9}" width="10" height="10" fill="{colours[1]}"/>'
                 f'<text x="{name_w + 104}" y="{y}" font-size="11">{legend[1]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def interval_chart(rows: Sequence[tuple[str, float, float, float, float]], width: int = 560,
                   label: str = "incremental revenue with its 95 % interval") -> str:
    """Per name: a dot at the estimate with its interval as a whisker, across a zero line, and a
    hollow bar for the last-touch figure (name, estimate, low, high, last touch), as inline SVG.

    An interval that crosses zero reads at a glance as "may have done nothing"; the grey bar
    shows how much more a last-touch report would have claimed.
    """
    if not rows:
        return ""
    lo = min(min(low, 0.0) for _, _, low, _, _ in rows)
    hi = max(max(high, touch, 0.0) for _, _, _, high, touch in rows)
    span = (hi - lo) or 1.0
    name_w, row_h, pad_r = 140, 34, 56
    plot = width - name_w - pad_r
    height = row_h * len(rows) + 46

    def x(v: float) -> float:
        return name_w + plot * (v - lo) / span

    zero = x(0.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(label, quote=True)}">',
             f'<text x="{zero:.1f}" y="10" font-size="10" text-anchor="middle" fill="#616e7c">$0</text>',
             f'<line x1="{zero:.1f}" y1="14" x2="{zero:.1f}" y2="{height - 26}" stroke="#9aa5b1" '
             f'stroke-dasharray="3 3"/>']
    for i, (name, value, low, high, touch) in enumerate(rows):
        y = 18 + i * row_h
        mid = y + 12
        colour = "#0f9d58" if low > 0 else ("#d93025" if high < 0 else "#1a73e8")
        parts.append(f'<text x="0" y="{mid + 4}" font-size="12" fill="#1f2933">{escape(name[:22])}</text>')
        left, right = sorted((zero, x(touch)))
        parts.append(f'<rect class="last-touch" x="{left:.1f}" y="{y + 2}" width="{right - left:.1f}" height="20" '
                     f'fill="none" stroke="#cbd2d9"><title>last touch: {touch:,.0f}</title></rect>')
        parts.append(f'<line x1="{x(low):.1f}" y1="{mid}" x2="{x(high):.1f}" y2="{mid}" stroke="{colour}" '
                     f'stroke-width="2"/>')
        for end in (low, high):
            parts.append(f'<line x1="{x(end):.1f}" y1="{mid - 5}" x2="{x(end):.1f}" y2="{mid + 5}" '
                         f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<circle class="estimate" cx="{x(value):.1f}" cy="{mid}" r="4.5" fill="{colour}">'
                     f'<title>{escape(name)}: {value:,.0f} [{low:,.0f}, {high:,.0f}]</title></circle>')
        parts.append(f'<text x="{max(x(high), x(touch)) + 6:.1f}" y="{mid + 4}" font-size="10" '
                     f'fill="#3e4c59">{money(Decimal(f"{value:.2f}"))}</text>')
    y = height - 8
    parts.append(f'<circle cx="{name_w + 5}" cy="{y - 4}" r="4" fill="#1a73e8"/>'
                 f'<text x="{name_w + 14}" y="{y}" font-size="11">incremental, 95 % interval</text>'
                 f'<rect x="{name_w + 190}" y="{y - 9}" width="14" height="10" fill="none" stroke="#cbd2d9"/>'
                 f'<text x="{name_w + 208}" y="{y}" font-size="11">last touch</text>')
    parts.append("</svg>")
    return "".join(parts)


def charts(report: WeeklyReport) -> dict[str, str]:
    """The report's charts as inline SVG strings, by name."""
    return {
        "sales": bar_chart([(f"{d:%a}", float(v)) for d, v in report.sales_by_day()], label="sales per day"),
        "coaching": paired_bars([(r.name, r.sent, r.answered) for r in report.data.coaching]),
        "deals": paired_bars([(r.name, r.won, r.lost) for r in report.data.deals], colours=("#0f9d58", "#d93025"),
                             legend=("won", "lost")) if any(r.won or r.lost for r in report.data.deals) else "",
    }


__all__ = ["ChatterChange", "Section", "WeeklyReport", "add_section", "bar_chart", "charts", "interval_chart",
           "money", "paired_bars", "section_sources", "summary_text"]
