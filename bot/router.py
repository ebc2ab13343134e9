"""Handlers registered by command and role, in the style of aiogram routers and Bolt listeners.

    router = Router("sales_managers")

    @router.command("stale", roles={Role.SALES_MANAGER}, help="deals with no activity")
    async def stale(ctx: Context, days: int = 3) -> str:
        ...

One command text works on every channel: `/stale 5`, `stale 5`, `STALE 5` and Telegram's
`/stale@huddle_bot 5` all reach `stale(ctx, days=5)`. Parameters after `ctx` are parsed from the
words that follow the command by their annotations (`int`, `float`, `Decimal`, `str`, `bool`,
`Greedy` for "the rest of the text"); a bad value gets the usage line back. Parameters whose name
is a registered dependency (`app.provide(name, obj)`) are injected instead, as aiogram does.
"""

from __future__ import annotations

import inspect
import re
import shlex
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin, get_type_hints

from bot.model import Button, OutboundKind, Person, Role

if TYPE_CHECKING:
    from bot.context import Context

HandlerResult = Union[str, "Reply", None]
HandlerFunc = Callable[..., Awaitable[HandlerResult]]
Filter = Callable[["Context"], bool | Awaitable[bool]]
Middleware = Callable[["Context", Callable[[], Awaitable[HandlerResult]]], Awaitable[HandlerResult]]


class _GreedyMarker:
    pass


Greedy = Annotated[str, _GreedyMarker()]
"""A `str` parameter that takes the rest of the text, spaces included."""

ANYONE: frozenset[Role] | None = None
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
    roles: frozenset[Role] | None
    router: Router
    names: tuple[str, ...] = ()
    help: str = ""
    usage: str = ""
    params: list[Param] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    filters: tuple[Filter, ...] = ()
    prefix: str = ""
    hidden: bool = False

    @property
    def qualname(self) -> str:
        return f"{self.router.name}.{self.func.__name__}"

    def allows(self, person: Person | None) -> bool:
        if self.roles is None:
            return True
        return person is not None and person.has_any(self.roles)

    async def passes_filters(self, ctx: Context) -> bool:
        for f in self.filters:
            ok = f(ctx)
            if inspect.isawaitable(ok):
                ok = await ok
            if not ok:
                return False
        return True


def _roles(roles: Iterable[Role] | Role | None) -> frozenset[Role] | None:
    if roles is None:
        return None
    if isinstance(roles, Role):
        return frozenset({roles})
    return frozenset(roles)


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
        if get_origin(hint) in (Union, getattr(__import__("types"), "UnionType", Union)):
            args = [a for a in get_args(hint) if a is not type(None)]
            optional = len(args) < len(get_args(hint))
            hint = args[0] if len(args) == 1 else str
        if hint not in _CONVERTIBLE:
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

    def include(self, router: Router) -> Router:
        self.children.append(router)
        return router

    def middleware(self, func: Middleware) -> Middleware:
        """Runs around every handler of this router, after matching (aiogram's inner middleware)."""
        self.middlewares.append(func)
        return func

    def command(
        self,
        *names: str,
        roles: Iterable[Role] | Role | None = ANYONE,
        help: str = "",
        usage: str | None = None,
        hidden: bool = False,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        if not names:
            raise ValueError("a command needs at least one name")

        def deco(func: HandlerFunc) -> HandlerFunc:
            params, injected = _signature(func)
            lowered = tuple(n.lower().lstrip("/") for n in names)
            self.commands.append(
                Handler(
                    func,
                    _roles(roles),
                    self,
                    names=lowered,
                    help=help,
                    usage=usage or _usage(lowered, params),
                    params=params,
                    injected=injected,
                    hidden=hidden,
                )
            )
            return func

        return deco

    def message(
        self, *filters: Filter, roles: Iterable[Role] | Role | None = ANYONE
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Free text that is not a command (after every filter passes)."""

        def deco(func: HandlerFunc) -> HandlerFunc:
            _, injected = _signature(func)
            self.messages.append(Handler(func, _roles(roles), self, injected=injected, filters=filters))
            return func

        return deco

    def callback(
        self, prefix: str, roles: Iterable[Role] | Role | None = ANYONE
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """A button press whose data starts with `prefix` (the rest is `ctx.args`)."""

        def deco(func: HandlerFunc) -> HandlerFunc:
            _, injected = _signature(func)
            self.callbacks.append(Handler(func, _roles(roles), self, injected=injected, prefix=prefix))
            return func

        return deco

    def file(
        self, *filters: Filter, roles: Iterable[Role] | Role | None = ANYONE
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """A message that carries files (a CSV dropped in a DM)."""

        def deco(func: HandlerFunc) -> HandlerFunc:
            _, injected = _signature(func)
            self.files.append(Handler(func, _roles(roles), self, injected=injected, filters=filters))
            return func

        return deco

    # -- lookup ------------------------------------------------------------------------------

    def walk(self) -> Iterable[Router]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all(self, attr: str) -> list[Handler]:
        return [h for r in self.walk() for h in getattr(r, attr)]

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
