"""Customers texting the store: a personal concierge from their CRM record, rewards, and a human.

Keywords: POINTS, HOURS, ADDRESS, JOIN / SIGNUP (asks for a name when unknown), HUMAN / AGENT /
"talk to a person". Other text gets product picks or, with OPENAI_API_KEY, the model's answer from
this customer's own data (rules when the model is off, slow or wrong). While a conversation is handed
off to staff, the bot stays silent and relays: the customer's texts go to the staff destination,
staff answer with `reply N TEXT` (or in the Slack thread of the handoff), `done N` hands back.
"""

from __future__ import annotations

import logging
import re

from bot.app import App
from bot.context import Context
from bot.hooks import COMPLIANCE_DEFAULTS
from bot.model import Address, Outbound, OutboundKind, OutboundStatus, Person
from bot.plugins import Plugin
from bot.router import Greedy, Router, UsageError
from coaching import concierge
from coaching.ai import AiClient, ai_client_for
from coaching.concierge import Intent, StoreInfo
from coaching.prompts import load_prompt
from coaching.roles import Role
from coaching.roles import declare as declare_roles
from coaching.sms_text import limit_for
from handlers.store_services import StoreServices
from storage.customer_context import CustomerContext, load_context
from storage.customers import Handoff

log = logging.getLogger(__name__)

router = Router("customers")
STAFF_ROLES = {Role.ADMIN, Role.TEAM_LEAD, Role.SALES_MANAGER}
CONSOLE_STAFF = Address("console", "staff")


def store_info(svc: StoreServices, store_id: int | None = None) -> StoreInfo:
    s = svc.store_for(store_id)
    return StoreInfo(s.name, s.timezone, s.address, s.hours, s.phone, s.website)


def staff_destination(svc: StoreServices, store_id: int | None = None) -> Address:
    configured = svc.store_for(store_id).staff_destination or svc.settings.store_staff_destination
    return Address.parse(configured) if configured else CONSOLE_STAFF


async def _context(ctx: Context, svc: StoreServices) -> CustomerContext:
    """This sender's own context; links an imported CRM record to the person on first contact."""
    person = ctx.person
    assert person is not None and person.id is not None
    store_id = svc.store_ids.get(svc.default_store.code)
    stock = await svc.in_stock(store_id, ctx.now())
    context = await load_context(svc.db, person.id, ctx.address.id if ctx.channel == "sms" else None,
                                 in_stock=stock)
    c = context.customer
    if c is not None and c.id is not None and c.person_id is None:
        await svc.customers.link_person(c.id, person.id, ctx.now())
        c.person_id = person.id
        if person.attributes.get("lead") or not person.name.strip():
            person.name = c.name or person.name
            person.attributes = {k: v for k, v in person.attributes.items() if k != "lead"}
            await svc.people.update(person, ctx.now())
    return context


def _name(person: Person) -> str | None:
    return person.name if person.name.strip() else None


# -- the customer's side ---------------------------------------------------------------------------


@router.message(roles={Role.CUSTOMER})
async def customer_text(ctx: Context, store: StoreServices, ai: AiClient) -> str | None:
    svc = store
    person = ctx.person
    assert person is not None and person.id is not None
    handoff = await svc.customers.open_handoff_for(person_id=person.id)
    if handoff is not None:
        await _relay_to_staff(ctx, handoff)
        return None
    context = await _context(ctx, svc)
    store = store_info(svc, context.customer.store_id if context.customer else None)
    text = ctx.text.strip()
    pending = ctx.state.get("concierge", {}).get("await")
    if pending == "join_name":
        name = concierge.name_from_reply(text)
        ctx.state.pop("concierge", None)
        if name is not None:
            return await _enrol(ctx, svc, context, store, name)
    intent = concierge.classify(text)
    rules = svc.settings.loyalty
    lead = bool(person.attributes.get("lead"))
    if intent is Intent.HUMAN:
        return await _hand_off(ctx, svc, context, store)
    if intent is Intent.JOIN:
        if context.customer is not None and context.customer.rewards_member:
            return concierge.already_member(context, _name(person))
        known = context.customer.first_name if context.customer and context.customer.first_name else None
        known = known or (person.name if person.name.strip() and not lead else None)
        if known is None:
            ctx.state["concierge"] = {"await": "join_name"}
            return concierge.join_ask_name(store)
        return await _enrol(ctx, svc, context, store, known)
    if intent is Intent.OTHER or (intent is Intent.PRODUCTS and not concierge.mentioned_categories(text)):
        answer = await _ask_model(ctx, svc, ai, context, store, text)
        if answer is not None:
            return answer
    return concierge.rule_reply(intent, context, text, store, rules, _name(person), lead)


async def _ask_model(ctx: Context, svc: StoreServices, ai: AiClient, context: CustomerContext, store: StoreInfo,
                     text: str) -> str | None:
    if not svc.settings.concierge_ai:
        return None
    if not ai.enabled:
        return None
    person = ctx.person
    assert person is not None
    system = load_prompt(
        "concierge",
        store_name=store.name,
        max_chars=limit_for(text, concierge.budget(text)),
        context=concierge.model_context(context, store, _name(person), svc.settings.loyalty),
    )
    answer = await ai.text(system, text[:1000], max_tokens=300, timeout=svc.settings.concierge_ai_timeout,
                           label="concierge")
    return concierge.clean_model_reply(answer, text)


async def _enrol(ctx: Context, svc: StoreServices, context: CustomerContext, store: StoreInfo, name: str) -> str:
    person = ctx.person
    assert person is not None and person.id is not None
    first, _, last = name.partition(" ")
    store_id = context.customer.store_id if context.customer else svc.store_ids.get(svc.default_store.code)
    phone = ctx.address.id if ctx.channel == "sms" else None
    await svc.customers.enrol(person.id, phone, first, last or None, store_id, ctx.now())
    if person.attributes.get("lead") or not person.name.strip():
        person.name = name
        person.attributes = {k: v for k, v in person.attributes.items() if k != "lead"}
        await svc.people.update(person, ctx.now())
    return concierge.join_done(first, store, svc.settings.loyalty, context.points)


async def _hand_off(ctx: Context, svc: StoreServices, context: CustomerContext, store: StoreInfo) -> str:
    person = ctx.person
    assert person is not None and person.id is not None
    destination = staff_destination(svc, context.customer.store_id if context.customer else None)
    handoff = await svc.customers.open_handoff(person.id, ctx.address.id, destination.channel, destination.id,
                                               ctx.now())
    post = concierge.staff_post(handoff.id, context, _name(person), ctx.address.id, ctx.text, store)
    sent = await ctx.send(destination, post, kind=OutboundKind.PROACTIVE, key=f"handoff:{handoff.id}:open")
    if sent.id is not None and handoff.staff_thread is None:
        await svc.customers.set_handoff_thread(handoff.id, f"outbox:{sent.id}")
    log.info("customer handed off handoff=%s person=%s destination=%s", handoff.id, person.id, destination)
    return concierge.handoff_ack(store)


async def _relay_to_staff(ctx: Context, handoff: Handoff) -> None:
    person = ctx.person
    assert person is not None
    who = person.name.strip() or handoff.customer_address
    thread = handoff.staff_thread if handoff.staff_thread and not handoff.staff_thread.startswith("outbox:") else None
    await ctx.send(Address(handoff.staff_channel, handoff.staff_address),
                       concierge.staff_relay(handoff.id, who, ctx.text), kind=OutboundKind.PROACTIVE,
                       key=f"in:{ctx.inbound.id}:handoff", thread=thread)


# -- the staff's side ------------------------------------------------------------------------------


async def _find_handoff(svc: StoreServices, ref: str) -> Handoff | None:
    ref = ref.strip().lstrip("#")
    if ref.isdigit():
        found = await svc.customers.handoff(int(ref))
        return found if found is not None and found.closed_at is None else None
    from bot.phones import normalize_phone

    try:
        phone = normalize_phone(ref)
    except ValueError:
        return None
    return await svc.customers.open_handoff_for(customer_address=phone)


async def _thread_handoff(ctx: Context, svc: StoreServices) -> Handoff | None:
    """The open handoff whose staff post this message replies to (a Slack thread), if any."""
    thread = ctx.inbound.thread
    if not thread:
        return None
    found = await svc.customers.open_handoff_for(staff_thread=thread)
    if found is not None:
        return found
    from storage.handoff_threads import resolve_threads

    await resolve_threads(svc.db)
    return await svc.customers.open_handoff_for(staff_thread=thread)


async def _send_to_customer(ctx: Context, svc: StoreServices, handoff: Handoff, text: str) -> str:
    """Queue staff's text to the customer and say what became of it: "Sent" only when it was."""
    customer = await svc.people.get(handoff.person_id)
    store = store_info(svc)
    staff_name = ctx.person.first_name if ctx.person and ctx.person.name.strip() else "Staff"
    body = f"{staff_name} at {store.name}: {text.strip()}"
    queued = await ctx.send(_customer_address(handoff, customer), body, kind=OutboundKind.REPLY,
                                key=f"in:{ctx.inbound.id}:relay", person=customer)
    who = f"{customer.name if customer and customer.name.strip() else handoff.customer_address} (#{handoff.id})"
    assert queued.id is not None
    outcome = await svc.outbox.first_attempt(queued.id, svc.settings.store_staff_reply_wait)
    if outcome is not None and outcome.status in (OutboundStatus.SENT, OutboundStatus.DELIVERED):
        return f"Sent to {who}."
    if outcome is not None and outcome.status in (OutboundStatus.FAILED, OutboundStatus.REFUSED):
        return f"Not sent to {who}: {_why(outcome.reason)}."
    _watch_relay(ctx, svc, queued.id, who)
    if outcome is None:
        return f"Queued for {who}, not sent yet (the line is busy). I'll tell you here if it fails."
    return f"Not sent to {who} yet: {_why(outcome.reason)}. Huddle keeps trying and will tell you if it gives up."


async def answer_handoff(app: App, svc: StoreServices, handoff_id: int, text: str, staff_name: str,
                         key: str) -> tuple[str, Outbound | None]:
    """Staff's answer to an open handoff from outside a chat (the admin pages), through the outbox.

    The same words and the same wait as `reply N`; returns (what became of it, the queued message).
    """
    handoff = await svc.customers.handoff(handoff_id)
    if handoff is None or handoff.closed_at is not None:
        return (f"No open customer conversation #{handoff_id}.", None)
    if not text.strip():
        return ("Nothing to send: the reply is empty.", None)
    customer = await svc.people.get(handoff.person_id)
    body = f"{staff_name.strip() or 'Staff'} at {store_info(svc).name}: {text.strip()}"
    queued = await app.send(_customer_address(handoff, customer), body, kind=OutboundKind.REPLY, key=key,
                            person=customer)
    who = f"{customer.name if customer and customer.name.strip() else handoff.customer_address} (#{handoff.id})"
    assert queued.id is not None
    outcome = await svc.outbox.first_attempt(queued.id, svc.settings.store_staff_reply_wait)
    if outcome is not None and outcome.status in (OutboundStatus.SENT, OutboundStatus.DELIVERED):
        return (f"Sent to {who}.", outcome)
    if outcome is not None and outcome.status in (OutboundStatus.FAILED, OutboundStatus.REFUSED):
        return (f"Not sent to {who}: {_why(outcome.reason)}.", outcome)
    return (f"Queued for {who}, not sent yet; the timeline shows when it is.", outcome or queued)


async def close_handoff(app: App, svc: StoreServices, handoff_id: int, by: str) -> str:
    """Hand a conversation back to the bot from the admin pages (as `done N` does)."""
    handoff = await svc.customers.handoff(handoff_id)
    if handoff is None or handoff.closed_at is not None:
        return f"No open customer conversation #{handoff_id}."
    customer = await svc.people.get(handoff.person_id)
    await svc.customers.close_handoff(handoff.id, by, app.clock.now())
    await app.send(_customer_address(handoff, customer), concierge.handoff_over(store_info(svc)),
                   kind=OutboundKind.REPLY, key=f"handoff:{handoff.id}:closed", person=customer)
    return f"#{handoff.id} handed back to the bot."


def _customer_address(handoff: Handoff, customer: Person | None) -> Address:
    """Where the customer asked from: their address with the handoff's id, on whichever channel (SMS, web)."""
    if customer is not None:
        found = next((a for a in customer.addresses if a.id == handoff.customer_address), None)
        if found is not None:
            return found
    return Address("sms", handoff.customer_address)


def _why(reason: str | None) -> str:
    """The outbox's reason in words staff act on."""
    if not reason:
        return "unknown error"
    if reason == "opted out":
        return "they opted out of texts (they can text START to opt back in)"
    return reason


def _watch_relay(ctx: Context, svc: StoreServices, outbox_id: int, who: str) -> None:
    """Remember to tell this staff member if the message still fails after our answer."""
    svc.relays_in_flight[outbox_id] = (ctx.address, ctx.inbound.thread, who)


async def _relay_failed(app: App, svc: StoreServices, msg: Outbound) -> None:
    """An outbox hook: a staff reply that failed after `reply N` answered is reported to its author."""
    watched = svc.relays_in_flight.pop(msg.id, None) if msg.id is not None else None
    if watched is None:
        return
    staff, thread, who = watched
    await app.send(staff, f"Your reply to {who} could not be sent: {_why(msg.reason)}.", kind=OutboundKind.REPLY,
                   key=f"relay-failed:{msg.id}", thread=thread)


async def _close(ctx: Context, svc: StoreServices, handoff: Handoff) -> str:
    customer = await svc.people.get(handoff.person_id)
    await svc.customers.close_handoff(handoff.id, str(ctx.address), ctx.now())
    await ctx.send(_customer_address(handoff, customer), concierge.handoff_over(store_info(svc)),
                       kind=OutboundKind.REPLY, key=f"handoff:{handoff.id}:closed", person=customer)
    return f"#{handoff.id} handed back to the bot."


_REF = re.compile(r"^\s*(#?\d{1,9}|\+?[\d\s().-]{7,22}\d)\s+(\S.*)$", re.S)


@router.command("reply", roles=STAFF_ROLES, usage="reply N TEXT",
                help="answer a customer who asked for a person (N: the handoff number or their phone)")
async def staff_reply(ctx: Context, store: StoreServices, message: Greedy) -> str:
    svc = store
    m = _REF.match(message)
    if m is None:
        raise UsageError()
    ref, text = m.group(1), m.group(2)
    handoff = await _find_handoff(svc, ref)
    if handoff is None:
        raise UsageError(f"No open customer conversation {ref.strip()!r} (try HANDOFFS).")
    return await _send_to_customer(ctx, svc, handoff, text)


@router.command("done", roles=STAFF_ROLES, help="hand a customer conversation back to the bot: done N")
async def staff_done(ctx: Context, store: StoreServices, ref: str = "") -> str:
    svc = store
    handoff = await _find_handoff(svc, ref) if ref else await _thread_handoff(ctx, svc)
    if handoff is None:
        raise UsageError(f"No open customer conversation {ref!r} (try HANDOFFS)." if ref else "Which conversation?")
    return await _close(ctx, svc, handoff)


@router.command("handoffs", roles=STAFF_ROLES, help="customers waiting for a person")
async def staff_list(ctx: Context, store: StoreServices) -> str:
    svc = store
    open_ = await svc.customers.open_handoffs()
    if not open_:
        return "No customer is waiting for a person."
    lines = []
    for h in open_:
        p = await svc.people.get(h.person_id)
        lines.append(f"#{h.id} {p.name if p and p.name.strip() else h.customer_address} since {h.opened_at:%H:%M} UTC")
    return "\n".join(lines)


@router.command("reply", "done", "handoffs", "points", roles={Role.CUSTOMER}, hidden=True)
async def customer_says_staff_word(ctx: Context, store: StoreServices, ai: AiClient, rest: Greedy = "") -> str | None:
    """A customer's "Done, thanks!" is their text, not the staff command (and is relayed while handed off).

    POINTS is here too: budtenders have a POINTS command of their own (staff points), and a
    customer's POINTS must stay the concierge's answer about their rewards balance.
    """
    return await customer_text(ctx, store, ai)


async def _in_handoff_thread(ctx: Context, store: StoreServices) -> bool:
    return ctx.person is not None and ctx.person.has_any(STAFF_ROLES) and \
        await _thread_handoff(ctx, store) is not None


@router.message(_in_handoff_thread, roles=STAFF_ROLES)
async def staff_thread_reply(ctx: Context, store: StoreServices) -> str:
    """A staff message in the thread of a handoff post goes to that customer (`done` closes it)."""
    svc = store
    handoff = await _thread_handoff(ctx, svc)
    assert handoff is not None
    if ctx.text.strip().lower() in {"done", "/done"}:
        return await _close(ctx, svc, handoff)
    return await _send_to_customer(ctx, svc, handoff, ctx.text)


def setup(app: App) -> None:
    svc: StoreServices = app.deps["store"]
    declare_roles(app, Role.CUSTOMER)
    ai_client_for(app)
    app.include_router(router)
    app.hooks.contact_text.implement(lambda person, channel: contact_text(svc, app), owner="customers")
    app.hooks.compliance_text.implement(lambda kind, person, channel: compliance_text(svc, kind), owner="customers")

    async def relay_failed(msg: Outbound) -> None:
        await _relay_failed(app, svc, msg)

    app.outbox.on_failed.append(relay_failed)


DEFAULT_CONTACT = "Reply STOP to opt out."


def contact_text(svc: StoreServices, app: App) -> str:
    """HELP: the store's name and number, the keywords, and HUDDLE_STORE_CONTACT when it is set."""
    s = svc.default_store
    phone = f" {s.phone}" if s.phone else ""
    extra = svc.settings.store_contact or DEFAULT_CONTACT
    return f"{s.name}{phone}: text POINTS, HOURS, ADDRESS, JOIN or HUMAN. {extra}"


def compliance_text(svc: StoreServices, kind: str) -> str:
    """The carrier-required confirmations, signed with the store's name (and its number for HELP)."""
    s = svc.default_store
    if kind == "help_opted_out":  # never "Reply STOP": they already did
        phone = f" {s.phone}" if s.phone else ""
        return f"{s.name}{phone}: you're unsubscribed and get no texts from us. Reply START to opt back in."
    if kind == "opted_out":
        return f"{s.name}: you're unsubscribed and will get no more messages. Reply START to resubscribe."
    if kind == "opted_in":
        return f"{s.name}: you're subscribed again. Reply STOP to opt out, HELP for help."
    return f"{s.name}: {COMPLIANCE_DEFAULTS[kind]}"


plugin = Plugin("customers", setup, requires=("store",), description="customers texting the store")
