"""The customer concierge (pure): what to answer a customer's text, from their own record only.

Every function takes the one `CustomerContext` loaded for the sender, the store's public info and
the rules; none can reach another customer's data, so neither can a reply. The model path (see
`model_prompt`) is given exactly the same context, and its answer is trimmed to fit the SMS budget.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from coaching.loyalty import LoyaltyRules
from coaching.sms_text import fit
from storage.catalog import Product
from storage.customer_context import CustomerContext


class Intent(StrEnum):
    POINTS = "points"
    HOURS = "hours"
    ADDRESS = "address"
    JOIN = "join"
    HUMAN = "human"
    PRODUCTS = "products"
    GREETING = "greeting"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class StoreInfo:
    name: str
    timezone: str = "UTC"
    address: str | None = None
    hours: str | None = None
    phone: str | None = None
    website: str | None = None


CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "flower": ("flower", "bud", "buds", "eighth", "eighths", "3.5", "ounce", "oz", "strain", "indica", "sativa",
               "hybrid"),
    "pre-rolls": ("pre-roll", "preroll", "pre-rolls", "prerolls", "joint", "joints", "pre roll"),
    "vapes": ("vape", "vapes", "cart", "carts", "cartridge", "pod", "pods", "pen"),
    "edibles": ("edible", "edibles", "gummy", "gummies", "chocolate", "chocolates", "cookie", "drink"),
    "concentrates": ("concentrate", "concentrates", "wax", "resin", "rosin", "shatter", "dab", "dabs", "badder"),
    "tinctures": ("tincture", "tinctures", "oil", "drops"),
    "topicals": ("topical", "topicals", "lotion", "balm", "cream"),
}

_WORD = re.compile(r"[a-z0-9'+-]+(?:\.[0-9]+)?")
_HUMAN = re.compile(r"\b(human|agent|person|representative|rep|someone|somebody|staff|manager|real person|"
                    r"talk to (?:a|an|someone|somebody|the)|speak (?:to|with)|call me|operator)\b")
_JOIN = re.compile(r"\b(join|signup|sign up|sign me up|enrol|enroll|register|membership|become a member)\b")
_POINTS = re.compile(r"\b(points?|balance|pts|rewards?)\b")
_HOURS = re.compile(r"\b(hours?|open|opening|close|closing|closed|today|tonight|when)\b")
_ADDRESS = re.compile(r"\b(address|where|location|located|directions?|parking|find you)\b")
_PRODUCTS = re.compile(r"\b(recommend|recommendation|suggest|suggestion|what should|in stock|have any|got any|"
                       r"do you have|do u have|deals?|menu|products?|new|best|strongest|something)\b")
_GREETING = re.compile(r"^(hi|hey|hello|yo|hola|good (morning|afternoon|evening)|sup|hiya)\b[\s!.,?]*$")
_MORE = re.compile(r"\b(more|details|detailed|everything|full list|all of|long)\b")


def classify(text: str) -> Intent:
    """The customer's intent from keywords; a bare keyword (POINTS, HOURS, ...) always wins."""
    t = " ".join(text.lower().split())
    bare = t.strip(" ?!.")
    exact = {"points": Intent.POINTS, "balance": Intent.POINTS, "hours": Intent.HOURS, "address": Intent.ADDRESS,
             "join": Intent.JOIN, "signup": Intent.JOIN, "sign up": Intent.JOIN, "human": Intent.HUMAN,
             "agent": Intent.HUMAN, "menu": Intent.PRODUCTS, "location": Intent.ADDRESS}
    if bare in exact:
        return exact[bare]
    if _HUMAN.search(t):
        return Intent.HUMAN
    if _JOIN.search(t):
        return Intent.JOIN
    if _POINTS.search(t):
        return Intent.POINTS
    if _ADDRESS.search(t):
        return Intent.ADDRESS
    if _HOURS.search(t):
        return Intent.HOURS
    if _PRODUCTS.search(t) or mentioned_categories(t):
        return Intent.PRODUCTS
    if _GREETING.match(t) or not t:
        return Intent.GREETING
    return Intent.OTHER


def asked_for_more(text: str) -> bool:
    return bool(_MORE.search(text.lower()))


def budget(text: str) -> int:
    """SMS segments a reply may use: 2, or 4 when the customer asked for more."""
    return 4 if asked_for_more(text) else 2


def mentioned_categories(text: str) -> list[str]:
    t = f" {text.lower()} "
    return [cat for cat, words in CATEGORY_WORDS.items() if any(f" {w} " in t or f" {w}?" in t or f" {w}." in t
                                                                   or f" {w}," in t for w in words)]


def _first(ctx: CustomerContext, fallback: str | None) -> str | None:
    if ctx.customer and ctx.customer.first_name:
        return ctx.customer.first_name
    return fallback.split()[0] if fallback and fallback.strip() else None


def _hi(name: str | None) -> str:
    return f"Hi {name}!" if name else "Hi!"


def _money(value: Decimal | None) -> str:
    if value is None:
        return ""
    return f"${value:,.0f}" if value == value.to_integral_value() else f"${value:,.2f}"


def _day(when: datetime, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    return f"{local:%b} {local.day}"


def _earn_line(rules: LoyaltyRules) -> str:
    ppd = rules.points_per_dollar
    per = "1 point" if ppd == 1 else f"{ppd.normalize()} points"
    return f"You earn {per} per $1 spent"


# -- replies ---------------------------------------------------------------------------------------


def points_reply(ctx: CustomerContext, store: StoreInfo, rules: LoyaltyRules, name: str | None) -> str:
    first = _first(ctx, name)
    c = ctx.customer
    if c is None or not c.rewards_member:
        return (f"{_hi(first)} You're not in {store.name} rewards yet. Text JOIN to start earning: "
                f"{_earn_line(rules).lower()[4:]}.")
    tier = f" ({c.vip_tier} member)" if c.vip_tier else ""
    pick = next((p for p in ctx.in_stock if p.house_brand), None)
    tip = f" Tip: {pick.name} is in stock now." if pick else ""
    return f"{first + ', y' if first else 'Y'}ou have {ctx.points:,} points{tier}. {_earn_line(rules)}.{tip}"


def hours_reply(store: StoreInfo) -> str:
    if not store.hours:
        call = f" Please call {store.phone} for today's hours." if store.phone else ""
        return f"{store.name} hasn't set its opening hours here yet.{call}"
    where = f" {store.address}." if store.address else ""
    return f"{store.name} hours: {store.hours}.{where}"


def address_reply(store: StoreInfo) -> str:
    if not store.address:
        call = f" Please call {store.phone} for directions." if store.phone else ""
        return f"{store.name} hasn't set its address here yet.{call}"
    hours = f" Hours: {store.hours}." if store.hours else ""
    return f"{store.name} is at {store.address}.{hours}"


def join_ask_name(store: StoreInfo) -> str:
    return f"Happy to sign you up for {store.name} rewards! What's your first name?"


def join_done(first: str, store: StoreInfo, rules: LoyaltyRules, points: int = 0) -> str:
    balance = f" You already have {points:,} points." if points else ""
    return (f"Welcome to {store.name} rewards, {first}! {_earn_line(rules)}.{balance} "
            "Text POINTS anytime for your balance.")


def already_member(ctx: CustomerContext, name: str | None) -> str:
    first = _first(ctx, name)
    return f"{first + ', y' if first else 'Y'}ou're already a rewards member with {ctx.points:,} points."


_LETTER = "A-Za-zÀ-ÖØ-öø-ÿ"
_NAME_WORD = f"[{_LETTER}][{_LETTER}'\\-]{{0,29}}"
_NAME_OK = re.compile(f"^{_NAME_WORD}(?: {_NAME_WORD}){{0,2}}$")


def name_from_reply(text: str) -> str | None:
    """A name typed in answer to "what's your first name?" ("it's Ana", "Ana Ruiz"), or None."""
    t = " ".join(text.strip().strip(".!").split())
    t = re.sub(r"^(?:it'?s|i'?m|i am|my name is|name'?s|this is)\s+", "", t, flags=re.I)
    if not _NAME_OK.match(t) or classify(t) not in (Intent.OTHER, Intent.GREETING) or _GREETING.match(t.lower()):
        return None
    return " ".join(w[:1].upper() + w[1:] for w in t.split())


def handoff_ack(store: StoreInfo) -> str:
    return (f"Got it - a {store.name} team member will text you back here shortly. "
            "Until then I'll pass your messages along.")


def handoff_over(store: StoreInfo) -> str:
    return f"Thanks for chatting with the {store.name} team! Text HUMAN anytime to reach us again."


def staff_post(handoff_id: int, ctx: CustomerContext, name: str | None, phone: str, message: str,
               store: StoreInfo) -> str:
    """What staff see when a customer asks for a person: who, their standing, what they said, how to answer."""
    c = ctx.customer
    who = (c.name if c and c.name else name) or "New customer"
    facts = [phone]
    if c is not None:
        if c.vip_tier:
            facts.append(c.vip_tier)
        facts.append(f"{ctx.points:,} pts" if c.rewards_member else "not in rewards")
        if c.last_visit_at:
            facts.append(f"last visit {_day(c.last_visit_at, store.timezone)}")
    else:
        facts.append("not in the CRM")
    return (f"Customer handoff #{handoff_id} - {who} ({', '.join(facts)})\n"
            f"\"{message.strip()[:600]}\"\n"
            f"Answer with: reply {handoff_id} YOUR TEXT (or reply in this thread). done {handoff_id} hands back "
            "to the bot.")


def staff_relay(handoff_id: int, who: str, message: str) -> str:
    return f"#{handoff_id} {who}: {message.strip()[:1000]}"


def recommend(ctx: CustomerContext, text: str, limit: int = 2) -> list[Product]:
    """In-stock picks: the categories asked about, else the customer's favourites, house brands first."""
    wanted = mentioned_categories(text) or (ctx.customer.favourite_categories if ctx.customer else [])
    bought = {i.product_external_id for t in ctx.recent for i in t.items}
    pool = [p for p in ctx.in_stock if not wanted or p.category in wanted] or (ctx.in_stock if not
                                                                                mentioned_categories(text) else [])
    pool.sort(key=lambda p: (not p.house_brand, p.external_id in bought, -p.price_tier, p.name))
    return pool[:limit]


def products_reply(ctx: CustomerContext, text: str, store: StoreInfo, name: str | None) -> str:
    first = _first(ctx, name)
    picks = recommend(ctx, text)
    asked = mentioned_categories(text)
    if not picks:
        what = " or ".join(asked) if asked else "that"
        return (f"{_hi(first)} We're out of {what} right now. Text HUMAN and a budtender will help you find "
                "something similar.")
    listing = "; ".join(f"{p.name}{' ' + _money(p.price) if p.price is not None else ''}" for p in picks)
    liked = f" You often get {ctx.top_products[0]}." if ctx.top_products and not asked else ""
    return f"{_hi(first)} In stock now: {listing}.{liked} Ask your budtender to set it aside."


def greeting_reply(ctx: CustomerContext, store: StoreInfo, name: str | None, lead: bool) -> str:
    first = _first(ctx, name)
    c = ctx.customer
    if c is None or not c.rewards_member:
        return (f"{_hi(first)} Welcome to {store.name}. Text JOIN to join our rewards (1 point per $1). "
                "Text HOURS, ADDRESS, or HUMAN to reach our team.")
    last = f" Last visit {_day(c.last_visit_at, store.timezone)}." if c.last_visit_at else ""
    fav = f" Want another {ctx.top_products[0]}?" if ctx.top_products else ""
    return f"{_hi(first)} You have {ctx.points:,} points.{last}{fav} Text POINTS, HOURS, ADDRESS or HUMAN."


def fallback_reply(ctx: CustomerContext, store: StoreInfo, name: str | None) -> str:
    first = _first(ctx, name)
    join = " JOIN," if ctx.customer is None or not ctx.customer.rewards_member else ""
    return (f"Thanks{', ' + first if first else ''}! I can help with POINTS, HOURS, ADDRESS,{join} product picks, "
            "or text HUMAN to reach our team.")


def rule_reply(intent: Intent, ctx: CustomerContext, text: str, store: StoreInfo, rules: LoyaltyRules,
               name: str | None, lead: bool) -> str:
    """The deterministic answer for the intents that need no side effect (JOIN and HUMAN do)."""
    if intent is Intent.POINTS:
        reply = points_reply(ctx, store, rules, name)
    elif intent is Intent.HOURS:
        reply = hours_reply(store)
    elif intent is Intent.ADDRESS:
        reply = address_reply(store)
    elif intent is Intent.PRODUCTS:
        reply = products_reply(ctx, text, store, name)
    elif intent is Intent.GREETING:
        reply = greeting_reply(ctx, store, name, lead)
    else:
        reply = fallback_reply(ctx, store, name)
    return fit(reply, budget(text))


# -- the model's view ------------------------------------------------------------------------------


def model_context(ctx: CustomerContext, store: StoreInfo, name: str | None, rules: LoyaltyRules) -> str:
    """The only facts the model gets: this customer's record, the store, in-stock products."""
    c = ctx.customer
    customer: dict[str, object] = {"first_name": _first(ctx, name) or "unknown"}
    if c is not None:
        customer.update({
            "rewards_member": c.rewards_member,
            "vip_tier": c.vip_tier,
            "points": ctx.points,
            "member_since": c.signup_date.isoformat() if c.signup_date else None,
            "visits": c.visits,
            "last_visit": _day(c.last_visit_at, store.timezone) if c.last_visit_at else None,
            "favourite_categories": c.favourite_categories,
            "most_bought": ctx.top_products,
            "recent_orders": [
                {"date": _day(t.occurred_at, store.timezone), "total": str(t.total),
                 "items": [i.name for i in t.items][:5]}
                for t in ctx.recent
            ],
        })
    else:
        customer["rewards_member"] = False
    info = {
        "store": {"name": store.name, "address": store.address, "hours": store.hours, "phone": store.phone},
        "loyalty": f"{rules.points_per_dollar.normalize()} point(s) per $1 spent",
        "customer": customer,
        "in_stock": [
            {"name": p.name, "category": p.category, "brand": p.brand, "price": str(p.price) if p.price else None,
             "house_brand": p.house_brand}
            for p in ctx.in_stock[:25]
        ],
    }
    return json.dumps(info, ensure_ascii=False, default=str)


def clean_model_reply(text: str | None, customer_text: str) -> str | None:
    """The model's answer fitted to the SMS budget, or None when it is empty or unusable."""
    if not text:
        return None
    t = text.strip().strip('"').strip()
    if not t or len(t) > 4000:
        return None
    return fit(t, budget(customer_text))
