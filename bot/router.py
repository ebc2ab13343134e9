"""Handlers registered by command and role on nested routers, in the style of aiogram 3.

    router = Router("deals")

    @router.command("stale", roles={"manager"}, help="items with no activity")
    async def stale(ctx: Context, days: int = 3) -> str:
        ...

One command text works on every channel: `/stale 5`, `stale 5`, `STALE 5` and `/stale@bot 5` all
reach `stale(ctx, days=5)`. Parameters after `ctx` are parsed from the words that follow the
command by their annotations (`int`, `float`, `Decimal`, `str`, `bool`, `date`, `Greedy` for "the
rest of the text"); a bad value gets the usage line back. Other parameters are injected by name:
a dependency a plugin provided (`app.provide(name, obj)`), `person`, or data a filter returned.

Matching, for every kind of handler (command, callback, file, free text):

* Candidates are the handlers whose roles the sender holds (or that are open to anyone).
* Precedence is declared, never the order plugins loaded in: the handler for the sender's
  highest-ranked role goes first (ranks come with the roles, `bot/roles.py`); at the same rank a
  handler with filters goes before a catch-all; then declaration order inside a router, then the
  router's name. Two commands of the same name for the same role and rank are refused at start.
* The first candidate whose filters pass runs. Filters compose with `&`, `|` and `~`, and a
  filter may return a dict instead of True: its items are injected into the handler.
* A handler that raises `SkipHandler` passes the message on to the next candidate.
"""

from __future__ import annotations

import inspect
import re
import shlex
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin, get_type_hints

from bot.model import Button, OutboundKind, Person
from bot.roles import ANYONE_RANK, Roles

if TYPE_CHECKING:
    from bot.context import Context

HandlerResult = Union[str, "Reply", None]
HandlerFunc = Callable[..., Awaitable[HandlerResult]]
FilterResult = bool | Mapping[str, Any] | None
FilterFunc = Callable[["Context"], FilterResult | Awaitable[FilterResult]]
Middleware = Callable[["Context", Callable[[], Awaitable[HandlerResult]]], Awaitable[HandlerResult]]


class _GreedyMarker:
    pass


Greedy = Annotated[str, _GreedyMarker()]
"""A `str` parameter that takes the rest of the text, spaces included."""

ANYONE: frozenset[str] | None = None
"""Roles value for handlers open to everyone, including people we do not know yet."""


@dataclass(slots=True)
class Reply:
    text: str
    buttons: list[Button] = field(default_factory=list)
    kind: OutboundKind = OutboundKind.REPLY


class UsageError(Exception):
    """Raised by a handler (or the argument parser) to send the usage line back."""

    def __init__(self, message: str | None = None, **values: object) -> None:
        super().__init__(message or "")
        self.message = message
        """English text with `{placeholders}`, translated for the reader (bot/i18n.py)."""
        self.values = values


class SkipHandler(Exception):
    """Raised by a handler that decides, after all, that the message is not for it."""


class Filter:
    """A condition on the message; `&`, `|` and `~` compose filters into new ones.

    Returns True/False, or a dict of values to inject into the handler (a match, a parsed id).
    Parameters after `ctx` are injected by name, as for handlers (a provided service, `person`).
    """

    def __init__(self, func: FilterFunc, name: str | None = None) -> None:
        self.func = func
        self.name = name or getattr(func, "__name__", "filter")
        try:
            self.wants = [n for n in list(inspect.signature(func).parameters)[1:]]
        except (TypeError, ValueError):
            self.wants = []

    async def check(self, ctx: Context, available: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """None when the filter fails; otherwise the data it gives the handler (maybe empty)."""
        kwargs = {n: available[n] for n in self.wants if available is not None and n in available}
        result = self.func(ctx, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Mapping):
            return dict(result)
        return {} if result else None

    def __and__(self, other: FilterFunc | Filter) -> Filter:
        right = as_filter(other)

        async def both(ctx: Context, available: Mapping[str, Any]) -> dict[str, Any] | None:
            first = await self.check(ctx, available)
            if first is None:
                return None
            second = await right.check(ctx, {**available, **first})
            return None if second is None else {**first, **second}

        return _Composite(both, f"({self.name} & {right.name})")

    def __or__(self, other: FilterFunc | Filter) -> Filter:
        right = as_filter(other)

        async def either(ctx: Context, available: Mapping[str, Any]) -> dict[str, Any] | None:
            first = await self.check(ctx, available)
            return first if first is not None else await right.check(ctx, available)

        return _Composite(either, f"({self.name} | {right.name})")

    def __invert__(self) -> Filter:
        async def negated(ctx: Context, available: Mapping[str, Any]) -> dict[str, Any] | None:
            return {} if await self.check(ctx, available) is None else None

        return _Composite(negated, f"~{self.name}")

    def __repr__(self) -> str:
        return f"Filter({self.name})"


class _Composite(Filter):
    """`a & b`, `a | b`, `~a`: passes the injectable values on to the filters it is made of."""

    def __init__(self, combine: Callable[[Context, Mapping[str, Any]], Awaitable[dict[str, Any] | None]],
                 name: str) -> None:
        self.combine = combine
        self.name = name
        self.wants = []

    async def check(self, ctx: Context, available: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return await self.combine(ctx, available or {})


def as_filter(f: FilterFunc | Filter) -> Filter:
    return f if isinstance(f, Filter) else Filter(f)


def Text(
    *, equals: str | Iterable[str] | None = None, startswith: str | None = None, contains: str | None = None
) -> Filter:
    """Free text that equals one of `equals`, starts with or contains a string (any case)."""
    options = {equals.lower()} if isinstance(equals, str) else {e.lower() for e in equals or ()}

    def check(ctx: Context) -> bool:
        text = ctx.text.strip().lower()
        if options and text not in options:
            return False
        if startswith is not None and not text.startswith(startswith.lower()):
            return False
        return contains is None or contains.lower() in text

    return Filter(check, "Text")


def Regex(pattern: str | re.Pattern[str], flags: int = re.IGNORECASE) -> Filter:
    """Free text that matches `pattern` (searched); the handler may take `match`."""
    compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

    def check(ctx: Context) -> FilterResult:
        m = compiled.search(ctx.text)
        return {"match": m} if m else None

    return Filter(check, f"Regex({compiled.pattern!r})")


@dataclass(slots=True)
class Param:
    name: str
    kind: type
    default: Any
    required: bool
    greedy: bool
    optional: bool


@dataclass(slots=True)
class Handler:
    func: HandlerFunc
    roles: frozenset[str] | None
    router: Router
    names: tuple[str, ...] = ()
    help: str = ""
    usage: str = ""
    params: list[Param] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    filters: tuple[Filter, ...] = ()
    prefix: str = ""
    hidden: bool = False
    order: int = 0
    """Declaration order inside its router."""

    @property
    def qualname(self) -> str:
        return f"{self.router.name}.{self.func.__name__}"

    def allows(self, person: Person | None) -> bool:
        if self.roles is None:
            return True
        return person is not None and person.has_any(self.roles)

    def rank_for(self, person: Person | None, roles: Roles) -> int:
        """How strongly this handler claims the person: their best role it serves."""
        if self.roles is None or person is None:
            return ANYONE_RANK
        return roles.best_rank(self.roles & person.roles)

    async def check_filters(self, ctx: Context, available: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """None when a filter fails; otherwise what the filters give the handler."""
        data: dict[str, Any] = {}
        for f in self.filters:
            got = await f.check(ctx, {**(available or {}), **data})
            if got is None:
                return None
            data.update(got)
        return data

    async def passes_filters(self, ctx: Context, available: Mapping[str, Any] | None = None) -> bool:
        return await self.check_filters(ctx, available) is not None


def _roles(roles: Iterable[str] | str | None) -> frozenset[str] | None:
    if roles is None:
        return None
    if isinstance(roles, str):
        return frozenset({str(roles)})
    return frozenset(str(r) for r in roles)


_CONVERTIBLE = {int, float, str, Decimal, bool, date}


def _signature(func: HandlerFunc) -> tuple[list[Param], list[str]]:
    hints = get_type_hints(func, include_extras=True)
    sig = inspect.signature(func)
    params: list[Param] = []
    injected: list[str] = []
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i == 0:
            continue  # ctx
        hint = hints.get(name, str)
        greedy = False
        if get_origin(hint) is Annotated:
            base, *extra = get_args(hint)
            greedy = any(isinstance(e, _GreedyMarker) for e in extra)
            hint = base
        optional = False
        if get_origin(hint) in (Union, types.UnionType):
            args = [a for a in get_args(hint) if a is not type(None)]
            optional = len(args) < len(get_args(hint))
            hint = args[0] if len(args) == 1 else str
        if hint not in _CONVERTIBLE or name in ("match", "person"):
            injected.append(name)
            continue
        required = p.default is inspect.Parameter.empty
        params.append(Param(name, hint, None if required else p.default, required, greedy, optional))
    return params, injected


def _usage(names: tuple[str, ...], params: list[Param]) -> str:
    parts = [names[0]]
    for p in params:
        label = p.name.upper() + ("…" if p.greedy else "")
        parts.append(label if p.required else f"[{label}]")
    return " ".join(parts)


KINDS = ("commands", "messages", "callbacks", "files")


class Router:
    """A named group of handlers; routers nest with `include`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[Handler] = []
        self.messages: list[Handler] = []
        self.callbacks: list[Handler] = []
        self.files: list[Handler] = []
        self.children: list[Router] = []
        self.middlewares: list[Middleware] = []
        self._order = 0

    def include(self, router: Router) -> Router:
        self.children.append(router)
        return router

    def middleware(self, func: Middleware) -> Middleware:
        """Runs around every handler of this router, after matching (aiogram's inner middleware)."""
        self.middlewares.append(func)
        return func

    def _add(self, kind: str, handler: Handler) -> None:
        self._order += 1
        handler.order = self._order
        getattr(self, kind).append(handler)

    def command(
        self,
        *names: str,
        roles: Iterable[str] | str | None = ANYONE,
        help: str = "",
        usage: str | None = None,
        hidden: bool = False,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        if not names:
            raise ValueError("a command needs at least one name")

        def deco(func: HandlerFunc) -> HandlerFunc:
            params, injected = _signature(func)
            lowered = tuple(n.lower().lstrip("/") for n in names)
            self._add("commands", Handler(
                func, _roles(roles), self, names=lowered, help=help, usage=usage or _usage(lowered, params),
                params=params, injected=injected, hidden=hidden,
            ))
            return func

        return deco

    def message(
        self, *filters: FilterFunc | Filter, roles: Iterable[str] | str | None = ANYONE
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Free text that is not a command (after every filter passes)."""

        def deco(func: HandlerFunc) -> HandlerFunc:
            _, injected = _signature(func)
            self._add("messages", Handler(
                func, _roles(roles), self, injected=injected, filters=tuple(as_filter(f) for f in filters)
            ))
            return func

        return deco

    def callback(
        self, prefix: str, *filters: FilterFunc | Filter, roles: Iterable[str] | str | None = ANYONE
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """A button press whose data starts with `prefix` (the rest is `ctx.args`)."""

        def deco(func: HandlerFunc) -> HandlerFunc:
            _, injected = _signature(func)
            self._add("callbacks", Handler(
                func, _roles(roles), self, injected=injected, prefix=prefix,
                filters=tuple(as_filter(f) for f in filters),
            ))
            return func

        return deco

    def file(
        self, *filters: FilterFunc | Filter, roles: Iterable[str] | str | None = ANYONE
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """A message that carries files (a CSV dropped in a DM)."""

        def deco(func: HandlerFunc) -> HandlerFunc:
            _, injected = _signature(func)
            self._add("files", Handler(
                func, _roles(roles), self, injected=injected, filters=tuple(as_filter(f) for f in filters)
            ))
            return func

        return deco

    # -- lookup ------------------------------------------------------------------------------

    def walk(self) -> Iterable[Router]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all(self, attr: str) -> list[Handler]:
        return [h for r in self.walk() for h in getattr(r, attr)]

    def candidates(self, kind: str, person: Person | None, roles: Roles) -> list[Handler]:
        """The handlers of `kind` open to `person`, in the order they are tried (see the module doc)."""
        found = [h for h in self.all(kind) if h.allows(person)]
        found.sort(key=lambda h: (-h.rank_for(person, roles), not h.filters, h.router.name, h.order))
        return found

    def conflicts(self, roles: Roles) -> list[str]:
        """Commands that two handlers would answer for the same role at the same rank."""
        problems = []
        by_name: dict[str, list[Handler]] = {}
        for h in self.all("commands"):
            for n in h.names:
                by_name.setdefault(n, []).append(h)
        for name, handlers in sorted(by_name.items()):
            for i, a in enumerate(handlers):
                for b in handlers[i + 1 :]:
                    if a.router is b.router:
                        continue
                    if a.roles is None and b.roles is None:
                        shared = ["anyone"]
                    else:
                        shared = sorted((a.roles or frozenset()) & (b.roles or frozenset()))
                    if shared:
                        problems.append(f"command {name!r} is answered by both {a.qualname} and {b.qualname} "
                                        f"for {', '.join(shared)}")
        return problems

    def middlewares_for(self, handler: Handler) -> list[Middleware]:
        chain: list[Middleware] = []

        def visit(r: Router, acc: list[Middleware]) -> bool:
            acc = acc + r.middlewares
            if handler.router is r:
                chain.extend(acc)
                return True
            return any(visit(c, acc) for c in r.children)

        visit(self, [])
        return chain


_COMMAND_RE = re.compile(r"^/?([A-Za-z][\w-]*)(?:@\w+)?[?!.,:]*(?:\s+(.*))?$", re.S)


def split_command(text: str) -> tuple[str, str] | None:
    """`"/Stale@bot  5"` → `("stale", "5")`; None when the text cannot be a command."""
    m = _COMMAND_RE.match(text.strip())
    if not m:
        return None
    return m.group(1).lower(), (m.group(2) or "").strip()


def tokenize(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:  # an unmatched quote or apostrophe in plain speech
        return args.split()


def _convert(value: str, kind: type) -> Any:
    if kind is str:
        return value
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    if kind is Decimal:
        try:
            return Decimal(value.replace("$", "").replace(",", ""))
        except InvalidOperation as exc:
            raise ValueError(value) from exc
    if kind is bool:
        low = value.lower()
        if low in {"1", "yes", "on", "true", "y"}:
            return True
        if low in {"0", "no", "off", "false", "n"}:
            return False
        raise ValueError(value)
    if kind is date:
        return datetime.strptime(value, "%Y-%m-%d").date()
    raise TypeError(kind)


_WORD = re.compile(r"""\s*(?:"[^"]*"|'[^']*'|\S+)""")


def _rest_after(args: str, words: int) -> str:
    """The raw text after the first `words` words, quotes and spacing kept as typed."""
    pos = 0
    for _ in range(words):
        m = _WORD.match(args, pos)
        if not m:
            return ""
        pos = m.end()
    return args[pos:].strip()


def parse_args(handler: Handler, args: str) -> dict[str, Any]:
    """Match the words after the command to the handler's parameters, or raise UsageError."""
    tokens = tokenize(args)
    values: dict[str, Any] = {}
    for i, p in enumerate(handler.params):
        if p.greedy:
            rest = _rest_after(args, i)
            if not rest and p.required:
                raise UsageError()
            values[p.name] = rest or p.default
            return values
        if i >= len(tokens):
            if p.required:
                raise UsageError()
            values[p.name] = p.default
            continue
        try:
            values[p.name] = _convert(tokens[i], p.kind)
        except (ValueError, TypeError):
            shown = tokens[i] if len(tokens[i]) <= 24 else tokens[i][:20] + "…"
            raise UsageError("“{shown}” is not a valid {name}.", shown=shown, name=p.name.upper()) from None
    if len(tokens) > len(handler.params):
        raise UsageError("Too many arguments.")
    return values
