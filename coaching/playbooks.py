"""Playbooks (pure): the TOML schema, compiled conditions and templates, holdout, timing and visit rhythm.

A playbook is a trigger, a condition and steps:

    [[playbooks]]
    name = "thank-you"
    trigger = "order.created"                 # an event type, "visit.overdue" (a state), or "schedule"
    condition = "event.first_order && event.total > 50.0"
    [[playbooks.steps]]
    wait_until = "10:00"                       # the next 10:00 in the customer's timezone
    [[playbooks.steps]]
    send = "Thanks {{ customer.first_name }}! Your {{ customer.points }} points are waiting."

Conditions are CEL (Google's Common Expression Language, through `common-expression-language`):
no Python `eval`, no attribute access outside the context given. Templates are Jinja2 in a
`SandboxedEnvironment` with `StrictUndefined`: a field that does not exist is refused by
`check` before it can render as an empty string to a customer.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.lazy import lazy_module

cel: Any = lazy_module("cel")
jinja_sandbox: Any = lazy_module("jinja2.sandbox")
jinja_nodes: Any = lazy_module("jinja2.nodes")
jinja2: Any = lazy_module("jinja2")

VISIT_OVERDUE = "visit.overdue"
"""A state trigger: appended once per customer per broken visit rhythm (see `overdue`)."""
SCHEDULE = "schedule"
"""A time trigger: every customer is considered at each of the playbook's `schedule` times
("HH:MM" daily, or a crontab line such as "0 10 * * mon"), in the first store's timezone."""

EVENT_FIELDS: dict[str, frozenset[str]] = {
    "order.created": frozenset({"order_id", "total", "discount", "status", "store_id", "budtender_person_id",
                                "rewards_signup", "first_order", "visits_before", "categories", "items"}),
    "customer.created": frozenset({"customer_id", "via", "store_id"}),
    "signup": frozenset({"customer_id", "via", "order_id"}),
    "points.tier_up": frozenset({"customer_id", "tier", "previous", "balance"}),
    "reply.received": frozenset({"inbound_id", "handler", "status"}),
    "optout": frozenset({"channel", "keyword"}),
    "optin": frozenset({"channel", "keyword"}),
    "coaching.sent": frozenset({"kind", "variant", "shift_id", "orders", "teams", "day"}),
    "receipt.awarded": frozenset({"receipt_id", "store", "receipt_number", "house_total", "customer_points",
                                  "budtender_points", "budtender_person_id", "read_by"}),
    "points.reversed": frozenset({"delta", "reason", "receipt_id", "order_id"}),
    VISIT_OVERDUE: frozenset({"days_since", "usual_gap_days", "ratio", "visits", "last_visit"}),
    SCHEDULE: frozenset({"date", "at"}),
}
"""Triggers a playbook may name, with the payload fields its `event` has (plus `type` and `occurred_at`)."""
EVENT_COMMON = frozenset({"type", "occurred_at", "id"})
CUSTOMER_FIELDS = frozenset({"id", "first_name", "last_name", "name", "visits", "lifetime_spend", "points",
                             "tier", "rewards_member", "days_since_last_visit", "usual_gap_days",
                             "favourite_categories", "store", "timezone"})
JOURNEY_FIELDS = frozenset({"days_since_start", "visits_since_start", "revenue_since_start", "replied", "held_out"})
STORE_FIELDS = frozenset({"name"})
ROOTS = {"event": None, "customer": CUSTOMER_FIELDS, "journey": JOURNEY_FIELDS, "store": STORE_FIELDS}
STOP_REASONS = ("replied", "visited", "opted_out")
STOP_EVENTS = {"reply.received": "replied", "order.created": "visited", "optout": "opted_out"}

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


class PlaybookError(ValueError):
    """One line: where (file and key path) and what is wrong."""


def parse_duration(text: str) -> timedelta:
    """`21d`, `12h`, `1d12h`, `30m`, `90s` → timedelta (ValueError otherwise)."""
    m = _DURATION.match(text or "")
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration: write e.g. 21d, 12h, 1d12h, 30m")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def parse_clock(text: str) -> time:
    try:
        hh, mm = text.strip().split(":")
        return time(int(hh), int(mm))
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not a time of day: write HH:MM, e.g. 10:00") from None


def schedule_cron(text: str) -> str:
    """A playbook's `schedule` as a crontab line: "10:00" → "0 10 * * *"; a crontab line as it is."""
    if ":" in text:
        at = parse_clock(text)
        return f"{at.minute} {at.hour} * * *"
    from bot.scheduler import cron

    try:
        cron(text, "UTC")
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"{text!r} is not a schedule: write HH:MM (daily) or a crontab line such as "
                         f"\"0 10 * * mon\" ({exc})") from None
    return " ".join(text.split())


def next_local(now: datetime, at: time, tz: str) -> datetime:
    """The next `at` o'clock in zone `tz` strictly after `now` (UTC out): "tomorrow morning" after an evening order."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(now.tzinfo)


def held_out(subject: str, playbook: str, share: float) -> bool:
    """Deterministic holdout: the same person is always in or out of the same playbook's control group."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{playbook}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


# -- the schema ---------------------------------------------------------------------------------


class StepSpec(BaseModel):
    """One step: exactly one of send / wait / wait_until / award_points / notify / branch / stop."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = None
    send: str | None = None
    wait: str | None = None
    wait_until: str | None = None
    award_points: int | None = Field(None, ge=1, le=100_000)
    notify: str | None = None
    branch: str | None = None
    then: str | None = None
    else_: str | None = Field(None, alias="else")
    stop: bool = False

    @property
    def kind(self) -> str:
        return next(k for k in ("send", "wait", "wait_until", "award_points", "notify", "branch")
                    if getattr(self, k) is not None) if not self.stop else "stop"

    @model_validator(mode="after")
    def _one_action(self) -> StepSpec:
        set_ = [k for k in ("send", "wait", "wait_until", "award_points", "notify", "branch")
                if getattr(self, k) is not None] + (["stop"] if self.stop else [])
        if len(set_) != 1:
            raise ValueError("a step has exactly one of send, wait, wait_until, award_points, notify, branch, stop"
                             + (f" (this one has {', '.join(set_)})" if set_ else ""))
        if (self.then or self.else_) and self.branch is None:
            raise ValueError("then/else belong to a branch step")
        return self

    @field_validator("wait")
    @classmethod
    def _wait(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("wait_until")
    @classmethod
    def _wait_until(cls, value: str | None) -> str | None:
        if value is not None:
            parse_clock(value)
        return value


class PlaybookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    enabled: bool = True
    trigger: str
    schedule: str | None = None
    condition: str = "true"
    marketing: bool = True
    holdout: float = Field(0.10, ge=0, le=0.5)
    attribution_days: int = Field(7, ge=1, le=90)
    stop_when: list[Literal["replied", "visited", "opted_out"]] = Field(default_factory=lambda: ["opted_out"])
    max_share_per_hour: float = Field(0.25, gt=0, le=1)
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: lowercase letters, digits, - and _ (up to 100)")
        return value

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, value: str) -> str:
        if value not in EVENT_FIELDS:
            raise ValueError(f"unknown trigger {value!r} (known: {', '.join(sorted(EVENT_FIELDS))})")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_text(cls, value: str | None) -> str | None:
        if value is not None:
            schedule_cron(value)
        return value

    @model_validator(mode="after")
    def _schedule(self) -> PlaybookSpec:
        if self.trigger == SCHEDULE:
            if self.schedule is None:
                raise ValueError("trigger = \"schedule\" needs schedule = \"HH:MM\" or a crontab line")
        elif self.schedule is not None:
            raise ValueError("schedule belongs to trigger = \"schedule\"")
        return self


# -- compiled -----------------------------------------------------------------------------------


def _fields_used(expression: str, root: str) -> set[str]:
    return set(re.findall(rf"(?<![\w.]){root}\.([A-Za-z_]\w*)", expression))


_MACRO = re.compile(r"\.(?:all|exists|exists_one|existsOne|map|filter)\(\s*([A-Za-z_]\w*)\s*,"
                    r"(?:\s*([A-Za-z_]\w*)\s*,)?")


def _macro_bound(expression: str) -> set[str]:
    """Names a macro binds (`event.categories.exists(c, c == "flower")` binds c): the CEL library
    lists them among the expression's variables, but they are no outside names."""
    return {name for m in _MACRO.finditer(expression) for name in m.groups() if name}


def compile_condition(expression: str, trigger: str, place: str) -> Any:
    """A CEL program, or PlaybookError naming the place: syntax, unknown variables and fields."""
    try:
        program = cel.compile(expression)
    except ValueError as exc:
        detail = str(exc).splitlines()[0].split("ERROR: ")[-1]
        raise PlaybookError(f"{place}: condition does not compile: {detail}") from None
    unknown = sorted(set(program.variables()) - set(ROOTS) - _macro_bound(expression))
    if unknown:
        raise PlaybookError(f"{place}: unknown name {unknown[0]!r} (use event, customer, journey, store)")
    _check_fields(expression, trigger, place)
    return program


def _check_fields(text: str, trigger: str, place: str) -> None:
    allowed = {"event": EVENT_FIELDS[trigger] | EVENT_COMMON, **{k: v for k, v in ROOTS.items() if v is not None}}
    for root, names in allowed.items():
        for used in sorted(_fields_used(text, root)):
            if used not in names:
                raise PlaybookError(f"{place}: {root}.{used} does not exist (known: {', '.join(sorted(names))})")


_ENV: Any = None


def sandbox() -> Any:
    global _ENV
    if _ENV is None:
        _ENV = jinja_sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    return _ENV


TEMPLATE_FILTERS = frozenset({
    "abs", "capitalize", "center", "count", "d", "default", "first", "float", "int", "join", "last", "length",
    "list", "lower", "max", "min", "replace", "reverse", "round", "sort", "string", "sum", "title", "trim",
    "truncate", "unique", "upper", "wordcount", "wordwrap"})
"""The filters a template may use: text and number formatting. Left out on purpose: `attr`, `map`,
`selectattr`/`rejectattr`, `groupby`, `format`, `xmlattr`, `tojson`, `pprint` — the ones published
sandbox escapes lean on to reach attributes by name or format strings."""


def _unsafe_template_node(tree: Any) -> str | None:
    """What in a parsed template goes beyond reading fields, or None.

    The sandbox already refuses these when a template renders; refusing them when the playbook is
    checked means a bad template never reaches a customer's journey (and a step never fails on it):
    no calls (`''.__class__.__mro__[1].__subclasses__()`, `"{0.__class__}".format(x)`), no
    attribute or key starting with `_`, no computed keys, only the formatting filters, no
    include/import/extends/macros, no `**` and no repeating a literal string or list (`'a' * 10**9`).
    """
    n = jinja_nodes
    for node in tree.find_all(n.Node):
        if isinstance(node, n.Call):
            return "a call"
        if isinstance(node, n.Getattr) and node.attr.startswith("_"):
            return f"attribute {node.attr!r}"
        if isinstance(node, n.Getitem):
            if not isinstance(node.arg, n.Const):
                return "a computed key"
            if isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
                return f"key {node.arg.value!r}"
        if isinstance(node, n.Filter | n.FilterBlock) and getattr(node, "name", None) not in TEMPLATE_FILTERS:
            return f"filter {getattr(node, 'name', '?')!r}"
        if isinstance(node, n.Keyword) and node.key == "attribute":
            path = node.value.value if isinstance(node.value, n.Const) else None
            if not isinstance(path, str) or any(part.startswith("_") for part in path.split(".")):
                return "attribute= of a hidden or computed name"
        if isinstance(node, n.Extends | n.Include | n.Import | n.FromImport | n.Macro | n.CallBlock):
            return f"{{% {type(node).__name__.lower()} %}}"
        if isinstance(node, n.Pow):
            return "**"
        if isinstance(node, n.Mul) and any(
                isinstance(side, n.List | n.Tuple) or (isinstance(side, n.Const) and isinstance(side.value, str))
                for side in (node.left, node.right)):
            return "repeating a string or list with *"
    return None


def compile_template(text: str, trigger: str, place: str) -> Any:
    """A sandboxed Jinja2 template whose every field exists, or PlaybookError naming the first that does not."""
    env = sandbox()
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise PlaybookError(f"{place}: template line {exc.lineno}: {exc.message}") from None
    from jinja2 import meta

    refused = _unsafe_template_node(tree)
    if refused:
        raise PlaybookError(f"{place}: template refused: {refused} (a message template reads fields; "
                            "it calls nothing and reaches no internals)")
    unknown = sorted(meta.find_undeclared_variables(tree) - set(ROOTS))
    if unknown:
        raise PlaybookError(f"{place}: template field {unknown[0]!r} does not exist "
                            "(write customer.first_name, event.total, store.name, …)")
    allowed = {"event": EVENT_FIELDS[trigger] | EVENT_COMMON, **{k: v for k, v in ROOTS.items() if v is not None}}
    for node in tree.find_all(jinja_nodes.Getattr):
        if (isinstance(node.node, jinja_nodes.Name) and node.node.name in allowed
                and node.attr not in allowed[node.node.name]):
            raise PlaybookError(f"{place}: template field {node.node.name}.{node.attr} does not exist "
                                f"(known: {', '.join(sorted(allowed[node.node.name]))})")
    return env.from_string(text)


@dataclass
class Step:
    spec: StepSpec
    index: int
    condition: Any = None
    template: Any = None
    then_index: int | None = None
    else_index: int | None = None
    delay: timedelta | None = None
    at: time | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind


@dataclass
class Playbook:
    """A checked playbook: compiled condition, templates and step jumps."""

    spec: PlaybookSpec
    source: str
    condition: Any
    steps: list[Step]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def trigger(self) -> str:
        return self.spec.trigger

    @cached_property
    def stop_reasons(self) -> frozenset[str]:
        return frozenset(self.spec.stop_when)

    def matches(self, context: Mapping[str, Any]) -> bool:
        return bool(self.condition.execute(dict(context)))


END = "end"


def build(spec: PlaybookSpec, source: str, where: str) -> Playbook:
    place = f"{source}: {where}"
    condition = compile_condition(spec.condition, spec.trigger, f"{place}.condition")
    ids = {s.id: i for i, s in enumerate(spec.steps) if s.id}
    steps = []
    for i, s in enumerate(spec.steps):
        step_place = f"{place}.steps[{i}]"
        step = Step(s, i)
        if s.send is not None:
            step.template = compile_template(s.send, spec.trigger, f"{step_place}.send")
        if s.notify is not None:
            step.template = compile_template(s.notify, spec.trigger, f"{step_place}.notify")
        if s.wait is not None:
            step.delay = parse_duration(s.wait)
        if s.wait_until is not None:
            step.at = parse_clock(s.wait_until)
        if s.branch is not None:
            step.condition = compile_condition(s.branch, spec.trigger, f"{step_place}.branch")
            for label, attr, key in ((s.then, "then_index", "then"), (s.else_, "else_index", "else")):
                if label is None:
                    setattr(step, attr, i + 1)
                elif label == END:
                    setattr(step, attr, len(spec.steps))
                elif label not in ids:
                    raise PlaybookError(f"{step_place}.{key}: branch target {label!r} is no step id (nor \"end\")")
                elif ids[label] <= i:
                    raise PlaybookError(f"{step_place}.{key}: branch target {label!r} is not a later step (no loops)")
                else:
                    setattr(step, attr, ids[label])
        steps.append(step)
    return Playbook(spec, source, condition, steps)


def _pydantic_place(exc: ValidationError) -> str:
    """`.steps[1].wait: message` (or `: message` for the playbook as a whole)."""
    err = exc.errors()[0]
    path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {err['loc'][-1]!r}"
    elif err["type"] == "missing":
        message = "required key missing"
    return f".{path}: {message}" if path else f": {message}"


def parse_playbooks(raw: Any, source: str) -> list[Playbook]:
    """`[[playbooks]]` entries (a list of tables) → checked playbooks; PlaybookError on the first problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PlaybookError(f"{source}: playbooks: write [[playbooks]] tables")
    out: list[Playbook] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"playbooks[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        try:
            spec = PlaybookSpec.model_validate(entry)
        except ValidationError as exc:
            raise PlaybookError(f"{source}: {where}{_pydantic_place(exc)}") from None
        if spec.name in seen:
            raise PlaybookError(f"{source}: {where}.name: {spec.name!r} is defined twice")
        seen.add(spec.name)
        out.append(build(spec, source, where))
    return out


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_LINE = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_PLACE = re.compile(r"^playbooks\[(\d+)\](?: \([^)]*\))?(?:\.steps\[(\d+)\])?(?:\.(\w+))?(?:\[\d+\])?[:.]")


def locate(text: str, playbook: int | None, step: int | None = None, key: str | None = None) -> int | None:
    """The 1-based line of `key` in the `playbook`-th `[[playbooks]]` table (or its `step`-th
    `[[playbooks.steps]]`; top level when `playbook` is None), else of the nearest table that holds it.

    tomllib keeps no positions, so this reads the lines the way TOML lays tables out: headers,
    `key =` lines, multi-line strings skipped. Inline tables (`steps = [{...}]`) point at `steps`.
    """
    p = s = -1
    table: str | None = "" if playbook is None else None
    fallback: list[int | None] = [None, None, None]  # playbook header, its `steps =`, the step's header
    multi: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if multi is not None:
            if line.count(multi) % 2 == 1:
                multi = None
            continue
        header = _HEADER.match(line)
        if header and not _KEY_LINE.match(line):
            name = header.group(2).replace(" ", "")
            array = header.group(1) == "[["
            if playbook is None and key is not None and name.split(".")[0].strip("\"'") == key:
                return n
            if array and name == "playbooks":
                p, s, table = p + 1, -1, "playbook"
                if p == playbook:
                    fallback[0] = n
            elif array and name == "playbooks.steps" and p >= 0:
                s, table = s + 1, "step"
                if p == playbook and s == step:
                    fallback[2] = n
            else:
                table = None
            continue
        found = _KEY_LINE.match(line)
        if found:
            name = found.group(1).strip("\"'")
            here = (table == "" and playbook is None) or (p == playbook and (
                (step is None and table == "playbook") or (step is not None and table == "step" and s == step)))
            if here and key is not None and name == key:
                return n
            if p == playbook and table == "playbook" and name == "steps":
                fallback[1] = n
            rest = line[found.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    multi = quote
                    break
    if step is not None:
        return fallback[2] or fallback[1] or fallback[0]
    return fallback[0]


def _with_line(exc: PlaybookError, source: str, text: str) -> PlaybookError:
    """`source: playbooks[0] (x).steps[1].send: …` → `source:12: playbooks[0] (x).steps[1].send: …`."""
    message = str(exc)
    if not message.startswith(f"{source}: "):
        return exc
    rest = message.removeprefix(f"{source}: ")
    m = _PLACE.match(rest)
    line = None
    if m:
        line = locate(text, int(m.group(1)), int(m.group(2)) if m.group(2) else None, m.group(3))
    elif rest.startswith("unknown key "):
        key = rest.split("'")[1] if "'" in rest else None
        line = locate(text, None, None, key)
    return PlaybookError(f"{source}:{line}: {rest}") if line else exc


def _toml_error(exc: tomllib.TOMLDecodeError, source: object) -> PlaybookError:
    """tomllib's `Expected ... (at line 3, column 12)` → `source:3:12: Expected ...`."""
    message = str(exc)
    m = _TOML_AT.search(message)
    if m:
        return PlaybookError(f"{source}:{m.group(1)}:{m.group(2)}: TOML: {message[:m.start()]}")
    return PlaybookError(f"{source}: TOML: {message}")


def load_file(path: Path) -> list[Playbook]:
    """A TOML file of `[[playbooks]]` (PlaybookError with the file, line and key path on anything wrong)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError(f"{path}: no such file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, path) from None
    unknown = sorted(set(data) - {"playbooks"})
    try:
        if unknown and path.parent.name == "playbooks":
            raise PlaybookError(f"{path}: unknown key {unknown[0]!r} (a playbooks/ file holds [[playbooks]] only)")
        return parse_playbooks(data.get("playbooks"), str(path))
    except PlaybookError as exc:
        raise _with_line(exc, str(path), text) from None


def load_all(config_data: Mapping[str, Any], config_path: Path | None, extra: Iterable[Playbook] = ()
             ) -> list[Playbook]:
    """huddle.toml's `[[playbooks]]`, then every `playbooks/*.toml` next to it, then `extra` (the demo's)."""
    source = str(config_path or "huddle.toml")
    try:
        found = parse_playbooks(config_data.get("playbooks"), source)
    except PlaybookError as exc:
        if config_path is None or not config_path.is_file():
            raise
        raise _with_line(exc, source, config_path.read_text(encoding="utf-8")) from None
    folder = (config_path.parent if config_path else Path.cwd()) / "playbooks"
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            found.extend(load_file(path))
    names = {p.name for p in found}
    found.extend(p for p in extra if p.name not in names)
    dupes = sorted({p.name for p in found if [q.name for q in found].count(p.name) > 1})
    if dupes:
        raise PlaybookError(f"playbooks: {dupes[0]!r} is defined in two places")
    return found


# -- the context conditions and templates see ------------------------------------------------------


def _money(value: Any) -> float:
    """Money as a CEL double for comparisons (`event.total > 50.0`); exact amounts stay strings in payloads."""
    try:
        return float(Decimal(str(value)))
    except Exception:
        return 0.0


def event_context(event_type: str, payload: Mapping[str, Any], occurred_at: datetime,
                  event_id: int = 0) -> dict[str, Any]:
    out = {k: v for k, v in payload.items() if v is not None}
    for key in ("total", "discount", "house_total"):
        if key in out:
            out[key] = _money(out[key])
    out.update(type=event_type, occurred_at=occurred_at.isoformat(), id=event_id)
    return out


def customer_context(subject: Any, now: datetime) -> dict[str, Any]:
    """The fields of `storage.playbooks.Subject` as conditions and templates read them (never None)."""
    if subject is None:
        return {k: "" for k in ("first_name", "last_name", "name", "tier", "store", "timezone")} | {
            "id": 0, "visits": 0, "lifetime_spend": 0.0, "points": 0, "rewards_member": False,
            "days_since_last_visit": -1, "usual_gap_days": 0.0, "favourite_categories": []}
    first = subject.first_name or (subject.person_name or "").split(" ")[0]
    name = " ".join(p for p in (subject.first_name, subject.last_name) if p) or subject.person_name or ""
    gap = usual_gap(subject.visits, subject.first_visit_at, subject.last_visit_at)
    return {
        "id": subject.customer_id or 0, "first_name": first or "", "last_name": subject.last_name or "",
        "name": name, "visits": subject.visits, "lifetime_spend": float(subject.lifetime_spend),
        "points": subject.points, "tier": subject.vip_tier or "", "rewards_member": subject.rewards_member,
        "days_since_last_visit": (now - subject.last_visit_at).days if subject.last_visit_at else -1,
        "usual_gap_days": round(gap, 1) if gap is not None else 0.0,
        "favourite_categories": list(subject.favourite_categories), "store": subject.store_name or "",
        "timezone": subject.timezone or "",
    }


@dataclass(frozen=True, slots=True)
class Journey:
    started_at: datetime
    visits_since_start: int = 0
    revenue_since_start: Decimal = Decimal("0")
    replied: bool = False
    held_out: bool = False

    def context(self, now: datetime) -> dict[str, Any]:
        return {"days_since_start": (now - self.started_at).days, "visits_since_start": self.visits_since_start,
                "revenue_since_start": float(self.revenue_since_start), "replied": self.replied,
                "held_out": self.held_out}


def render(template: Any, context: Mapping[str, Any]) -> str:
    return " ".join(template.render(**context).split())


# -- visit rhythm ---------------------------------------------------------------------------------


def usual_gap(visits: int, first: datetime | None, last: datetime | None) -> float | None:
    """Average days between a customer's visits, from their own history (None under two visits)."""
    if visits < 2 or first is None or last is None or last <= first:
        return None
    return (last - first).total_seconds() / 86400 / (visits - 1)


@dataclass(frozen=True, slots=True)
class RhythmRules:
    factor: float = 2.0
    """Overdue when the days since the last visit reach `factor ×` the customer's usual gap…"""
    min_days: int = 14
    """…and at least this many days (a daily regular is not lost after two days)."""
    min_visits: int = 3


def overdue(visits: int, first: datetime, last: datetime, now: datetime, rules: RhythmRules
            ) -> dict[str, Any] | None:
    """The `visit.overdue` payload when this customer's own rhythm is broken, else None."""
    gap = usual_gap(visits, first, last)
    if gap is None or visits < rules.min_visits:
        return None
    since = (now - last).total_seconds() / 86400
    if since < max(rules.min_days, rules.factor * gap):
        return None
    return {"days_since": int(since), "usual_gap_days": round(gap, 1), "ratio": round(since / max(gap, 0.01), 1),
            "visits": visits, "last_visit": last.isoformat()}


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Impact:
    """Revenue per person treated vs held out, and what the difference is worth with a 95 % interval."""

    treated: int
    held: int
    per_treated: Decimal
    per_held: Decimal
    incremental: Decimal | None
    low: Decimal | None
    high: Decimal | None


def _mean_var(values: Sequence[Decimal]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(float(v) for v in values) / n
    var = sum((float(v) - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def impact(treated: Sequence[Decimal], held: Sequence[Decimal], z: float = 1.96) -> Impact:
    """Incremental revenue = (mean treated − mean held) × treated people; Welch's normal interval.

    Without a held-out group there is nothing to compare with: the incremental figure is None
    (last-touch numbers would then be all one could say, and they count who came anyway).
    """
    mt, vt = _mean_var(treated)
    mh, vh = _mean_var(held)
    q = Decimal("0.01")
    if not treated or not held:
        return Impact(len(treated), len(held), Decimal(str(mt)).quantize(q), Decimal(str(mh)).quantize(q),
                      None, None, None)
    n = len(treated)
    diff = mt - mh
    se = math.sqrt(vt / len(treated) + vh / len(held))
    return Impact(n, len(held), Decimal(str(mt)).quantize(q), Decimal(str(mh)).quantize(q),
                  Decimal(str(diff * n)).quantize(q), Decimal(str((diff - z * se) * n)).quantize(q),
                  Decimal(str((diff + z * se) * n)).quantize(q))


@dataclass(slots=True)
class PlaybookFigures:
    name: str
    eligible: int = 0
    treated: int = 0
    held: int = 0
    sent: int = 0
    replied: int = 0
    converted: int = 0
    last_touch: Decimal = Decimal("0")
    revenue_treated: list[Decimal] = field(default_factory=list)
    revenue_held: list[Decimal] = field(default_factory=list)

    @property
    def impact(self) -> Impact:
        return impact(self.revenue_treated, self.revenue_held)


def figures(rows: Iterable[Any]) -> dict[str, PlaybookFigures]:
    """Aggregate `storage.playbooks.ReportRow`s per playbook."""
    out: dict[str, PlaybookFigures] = {}
    for r in rows:
        f = out.setdefault(r.playbook, PlaybookFigures(r.playbook))
        f.eligible += 1
        f.sent += r.sent
        f.replied += int(r.replied)
        f.converted += int(r.converted)
        if r.held_out:
            f.held += 1
            f.revenue_held.append(r.revenue)
        else:
            f.treated += 1
            f.revenue_treated.append(r.revenue)
            f.last_touch += r.after_send_revenue
    return out


__all__ = ["END", "EVENT_FIELDS", "SCHEDULE", "STOP_EVENTS", "VISIT_OVERDUE", "Impact", "Journey", "Playbook",
           "PlaybookError", "PlaybookSpec", "RhythmRules", "Step", "StepSpec", "customer_context", "event_context",
           "figures", "held_out", "impact", "load_all", "load_file", "next_local", "overdue", "parse_duration",
           "parse_playbooks", "render", "schedule_cron", "usual_gap"]
