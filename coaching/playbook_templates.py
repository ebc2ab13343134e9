"""The four ready playbooks (welcome, thank-you, win-back, VIP tier-up), as TOML a user can copy.

They are enabled in the demo (HUDDLE_DEMO=true) unless huddle.toml defines a playbook of the
same name; `python main.py playbooks templates` prints them for a real deployment.
"""

from __future__ import annotations

import tomllib

from coaching.playbooks import Playbook, parse_playbooks

TEMPLATES = '''
[[playbooks]]
name = "welcome"
description = "welcome a new rewards member the moment they sign up"
trigger = "signup"
stop_when = ["opted_out"]
[[playbooks.steps]]
send = """Welcome to {{ store.name }} rewards, {{ customer.first_name }}!
You earn a point per dollar. Reply STOP to opt out."""

[[playbooks]]
name = "thank-you"
description = "thank a first order over $50 the next morning; 21 days without a visit: double points"
trigger = "order.created"
condition = "event.first_order && event.total > 50.0"
stop_when = ["replied", "opted_out"]
[[playbooks.steps]]
wait_until = "10:00"
[[playbooks.steps]]
send = "Thanks for your first visit, {{ customer.first_name }}! You have {{ customer.points }} points already."
[[playbooks.steps]]
wait = "21d"
[[playbooks.steps]]
branch = "journey.visits_since_start > 0"
then = "end"
[[playbooks.steps]]
send = "{{ customer.first_name }}, double points on your next visit to {{ store.name }} this week."

[[playbooks]]
name = "win-back"
description = "a regular whose own visit rhythm broke: bonus points, then staff if they still stay away"
trigger = "visit.overdue"
condition = "event.ratio >= 2.0 && event.visits >= 3"
stop_when = ["replied", "visited", "opted_out"]
[[playbooks.steps]]
send = "Hi {{ customer.first_name }}, we miss you at {{ store.name }}! 50 bonus points are on your account."
[[playbooks.steps]]
award_points = 50
[[playbooks.steps]]
wait = "7d"
[[playbooks.steps]]
notify = """{{ customer.name }} (usually every {{ event.usual_gap_days }} days) has not been back
for {{ event.days_since }}+ days: worth a call?"""

[[playbooks]]
name = "vip-tier-up"
description = "congratulate a customer reaching a new points tier, and tell staff"
trigger = "points.tier_up"
stop_when = ["opted_out"]
[[playbooks.steps]]
send = """{{ customer.first_name }}, you just reached {{ event.tier | title }} at {{ store.name }}
with {{ event.balance }} points. Thank you!"""
[[playbooks.steps]]
notify = "{{ customer.name }} reached {{ event.tier }} ({{ event.balance }} points)."
'''


def templates() -> list[Playbook]:
    return parse_playbooks(tomllib.loads(TEMPLATES)["playbooks"], "coaching/playbook_templates.py")
