"""The weekly review's picture: a budtender's last weeks, day by day, as one HTML page with inline SVG.

Pure rendering (no I/O, no CDN): daily sales as bars, the average ticket as a line, the watermark's
average ticket as a dashed line, sign-ups under each day. Links are signed so that only the
budtender who got the SMS can open their own page.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape

from coaching.budtenders import ShiftTally, money


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: date
    sales: Decimal
    avg_ticket: Decimal
    signups: int
    orders: int

    @classmethod
    def of(cls, day: date, t: ShiftTally) -> DayPoint:
        return cls(day, t.sales, t.avg_ticket, t.signups, t.orders)


def sign_link(secret: str, person_id: int, week: str) -> str:
    """`<person>-<week>-<mac>`: the token in the weekly review's link."""
    mac = hmac.new(secret.encode(), f"{person_id}:{week}".encode(), hashlib.sha256).hexdigest()[:20]
    return f"{person_id}-{week}-{mac}"


def check_link(secret: str, token: str) -> tuple[int, str] | None:
    """(person id, week) from a token, or None if it is malformed or forged (constant-time check)."""
    parts = token.split("-")
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    person_id, week = int(parts[0]), f"{parts[1]}-{parts[2]}"
    if not hmac.compare_digest(sign_link(secret, person_id, week), token):
        return None
    return person_id, week


W, H, PAD_L, PAD_R, PAD_T, PAD_B = 960, 380, 60, 60, 30, 70


def render(name: str, week: str, points: list[DayPoint], watermark_ticket: Decimal | None) -> str:
    """An HTML page; days without orders are drawn as gaps, never as zeros in the ticket line."""
    n = max(len(points), 1)
    max_sales = max([p.sales for p in points] + [Decimal("1")])
    max_ticket = max([p.avg_ticket for p in points] + [watermark_ticket or Decimal("0"), Decimal("1")])
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    step = plot_w / n
    bar_w = step * 0.6

    def y_sales(v: Decimal) -> float:
        return PAD_T + plot_h - float(v / max_sales) * plot_h

    def y_ticket(v: Decimal) -> float:
        return PAD_T + plot_h - float(v / (max_ticket * Decimal("1.15"))) * plot_h

    parts: list[str] = []
    for i, p in enumerate(points):
        x = PAD_L + i * step + (step - bar_w) / 2
        y = y_sales(p.sales)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{PAD_T + plot_h - y:.1f}" '
                     f'fill="#9ccfa4"><title>{p.day:%a %b %d}: {escape(money(p.sales))}, '
                     f'{p.orders} orders</title></rect>')
        cx = PAD_L + i * step + step / 2
        parts.append(f'<text x="{cx:.1f}" y="{H - PAD_B + 16}" font-size="10" text-anchor="middle">{p.day:%d}</text>')
        if p.signups:
            parts.append(f'<text x="{cx:.1f}" y="{H - PAD_B + 32}" font-size="10" text-anchor="middle" '
                         f'fill="#7a4fd6">+{p.signups}</text>')
    segments: list[list[str]] = [[]]
    for i, p in enumerate(points):
        if p.orders:
            segments[-1].append(f"{PAD_L + i * step + step / 2:.1f},{y_ticket(p.avg_ticket):.1f}")
        elif segments[-1]:
            segments.append([])
    for seg in segments:
        if seg:
            parts.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="#1f5fbf" stroke-width="2.5"/>')
            for pt in seg:
                cx_, cy_ = pt.split(",")
                parts.append(f'<circle cx="{cx_}" cy="{cy_}" r="3" fill="#1f5fbf"/>')
    if watermark_ticket:
        y = y_ticket(watermark_ticket)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#d9822b" '
                     f'stroke-dasharray="6 4" stroke-width="2"/>')
        parts.append(f'<text x="{W - PAD_R + 4}" y="{y + 4:.1f}" font-size="11" fill="#d9822b">usual</text>')
    parts.append(f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{W - PAD_R}" y2="{PAD_T + plot_h}" stroke="#444"/>')
    parts.append(f'<text x="{PAD_L - 6}" y="{PAD_T + 10}" font-size="11" text-anchor="end">'
                 f'{escape(money(max_sales))}</text>')
    total = sum((p.sales for p in points), Decimal("0"))
    orders = sum(p.orders for p in points)
    signups = sum(p.signups for p in points)
    avg = money(total / orders) if orders else "-"
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" '
           f'aria-label="daily sales and average ticket">{"".join(parts)}</svg>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(name)} - {escape(week)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 1000px; }}
h1 {{ font-size: 1.4rem; margin-bottom: .2rem; }} .sub {{ color: #666; margin-top: 0; }}
.kpis {{ display: flex; gap: 2rem; margin: 1rem 0; }} .kpis div b {{ display: block; font-size: 1.5rem; }}
.legend span {{ margin-right: 1.2rem; font-size: .9rem; }}
</style></head><body>
<h1>{escape(name)}: your last {len(points)} days</h1>
<p class="sub">Weekly review {escape(week)}</p>
<div class="kpis"><div><b>{escape(money(total))}</b>sales</div><div><b>{escape(avg)}</b>avg ticket</div>
<div><b>{orders}</b>orders</div><div><b>{signups}</b>rewards sign-ups</div></div>
{svg}
<p class="legend"><span style="color:#5aa564">&#9632; daily sales</span>
<span style="color:#1f5fbf">&#9679; avg ticket</span>
<span style="color:#d9822b">- - your usual avg ticket</span><span style="color:#7a4fd6">+N sign-ups</span></p>
</body></html>
"""
