"""The message catalog: every text a person can receive, in their language (gettext through babel).

Code writes the English text and marks it, and each reader's `Person.locale` picks the language:

    t(person.locale, "Deal {id} not found.", id=5001)
    tn(person.locale, "{n} deal unchanged", "{n} deals unchanged", n)
    HELP = N_("my active deals")            # marked here, translated where it is shown: t(locale, HELP)

Translations live in `bot/locales/<lang>/LC_MESSAGES/huddle.po` (one catalog for the core and
every bundled plugin; a third-party plugin adds its own directory with `add_catalog_dir`). English
is the source language and needs no file; a locale without a catalog, or a text missing from one,
reads English. `tests/test_i18n.py` extracts every marked text with babel and fails when the
Russian catalog lacks one, or a translation's `{placeholders}` differ from the English.

A text composed before its reader is known (a parser's error, a card's red flag) is a `Msg`,
rendered with `.render(locale)` where it is shown (`str()` reads English); dates go through
`date_text` / `Day` so weekday and month names follow the locale too (babel's CLDR data).

To add a text: write it with `t`/`tn`/`N_`/`Msg`/`Plural` (or `UsageError("…")`), run
`pybabel extract -F babel.cfg -k t:2 -k tn:2,3 -k N_ -k Msg -k Plural:1,2 -k UsageError -o /tmp/huddle.pot .`
then `pybabel update -i /tmp/huddle.pot -d bot/locales -D huddle`, and translate the new entries
in the `.po` file (it is read as it is; no compile step).
"""

from __future__ import annotations

import gettext
import io
import threading
from collections.abc import Iterable
from datetime import date
from pathlib import Path

DOMAIN = "huddle"
LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT = "en"

_dirs: list[Path] = [LOCALES_DIR]
_cache: dict[str, gettext.NullTranslations] = {}
_lock = threading.Lock()


def add_catalog_dir(path: Path) -> None:
    """Another `<dir>/<lang>/LC_MESSAGES/huddle.po` tree (a third-party plugin's texts)."""
    if path not in _dirs:
        _dirs.append(path)
        _cache.clear()


def lang(locale: str | None) -> str:
    """`ru`, `ru-RU`, `ru_RU.UTF-8` → `ru`; empty → English."""
    if not locale:
        return DEFAULT
    return locale.replace("-", "_").split("_", 1)[0].split(".", 1)[0].lower() or DEFAULT


def available() -> list[str]:
    """Languages with a catalog, English first."""
    found = {p.parent.parent.name for d in _dirs for p in d.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return [DEFAULT, *sorted(found - {DEFAULT})]


def translations(locale: str | None) -> gettext.NullTranslations:
    code = lang(locale)
    hit = _cache.get(code)
    if hit is not None:
        return hit
    from babel.messages.mofile import write_mo  # the first translated text of a run loads babel
    from babel.messages.pofile import read_po

    with _lock:
        chain: gettext.NullTranslations = gettext.NullTranslations()
        for d in reversed(_dirs):
            po = d / code / "LC_MESSAGES" / f"{DOMAIN}.po"
            if not po.is_file():
                continue
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=code, domain=DOMAIN)
            buf = io.BytesIO()
            write_mo(buf, catalog)  # fuzzy entries are left out, as msgfmt does
            buf.seek(0)
            loaded = gettext.GNUTranslations(buf)
            loaded.add_fallback(chain)
            chain = loaded
        _cache[code] = chain
        return chain


def t(locale: str | None, msgid: str, /, **values: object) -> str:
    """`msgid` in the reader's language, with `{placeholders}` filled."""
    text = translations(locale).gettext(msgid)
    return text.format(**values) if values else text


def tn(locale: str | None, singular: str, plural: str, n: int, /, **values: object) -> str:
    """The plural form that fits `n` in the reader's language (`n` is also a placeholder)."""
    text = translations(locale).ngettext(singular, plural, n)
    return text.format(n=n, **values)


def N_(msgid: str) -> str:
    """Marks a text for the catalog where it is defined; translate it with `t` where it is shown."""
    return msgid


DATE_PATTERN = "EEE dd MMM"
"""A day as team leads read it: `Sun 22 Nov` in English, `вс 22 нояб.` in Russian."""


def date_text(locale: str | None, day: date, pattern: str = DATE_PATTERN) -> str:
    """`day` with the reader's weekday and month names (CLDR through babel)."""
    from babel.dates import format_date

    return format_date(day, pattern, locale=lang(locale))


def weekday_names(locale: str | None) -> list[str]:
    """Abbreviated weekday names, Monday first, as the reader's language writes them alone."""
    from babel.dates import get_day_names

    names = get_day_names("abbreviated", context="stand-alone", locale=lang(locale))
    return [names[i] for i in range(7)]


class Msg:
    """A text marked for the catalog and translated later, once the reader is known.

    Values may themselves be `Msg`, `Join` or `Day`, rendered in the same language.
    """

    __slots__ = ("msgid", "n", "plural", "values")

    def __init__(self, msgid: str, /, **values: object) -> None:
        self.msgid = msgid
        self.plural: str | None = None
        self.n = 0
        self.values = values

    def render(self, locale: str | None) -> str:
        values = {k: rendered(v, locale) for k, v in self.values.items()}
        if self.plural is not None:
            return tn(locale, self.msgid, self.plural, self.n, **values)
        return t(locale, self.msgid, **values)

    def __str__(self) -> str:
        return self.render(None)

    def __repr__(self) -> str:
        return f"Msg({self.msgid!r}, {self.values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Msg) and (self.msgid, self.plural, self.n, self.values) == (
            other.msgid, other.plural, other.n, other.values)

    def __hash__(self) -> int:
        return hash((self.msgid, self.plural, self.n))


def Plural(singular: str, plural: str, n: int, /, **values: object) -> Msg:
    """A `Msg` with plural forms (`n` is also a placeholder)."""
    msg = Msg(singular, **values)
    msg.plural, msg.n = plural, n
    return msg


class Join:
    """Several values rendered in one language and joined: `Join("; ", problems)`."""

    __slots__ = ("items", "sep")

    def __init__(self, sep: str, items: Iterable[object]) -> None:
        self.sep = sep
        self.items = list(items)

    def render(self, locale: str | None) -> str:
        return self.sep.join(rendered(i, locale) for i in self.items)

    def __str__(self) -> str:
        return self.render(None)


class Day:
    """A date shown in the reader's language (see `date_text`)."""

    __slots__ = ("day", "pattern")

    def __init__(self, day: date, pattern: str = DATE_PATTERN) -> None:
        self.day, self.pattern = day, pattern

    def render(self, locale: str | None) -> str:
        return date_text(locale, self.day, self.pattern)

    def __str__(self) -> str:
        return self.render(None)


def rendered(value: object, locale: str | None) -> object:
    """A value ready for a placeholder: lazy texts (anything with `render(locale)`) rendered, the rest as is."""
    render = getattr(value, "render", None)
    return render(locale) if callable(render) else value


__all__ = [
    "DATE_PATTERN",
    "N_",
    "Day",
    "Join",
    "Msg",
    "Plural",
    "add_catalog_dir",
    "available",
    "date_text",
    "lang",
    "rendered",
    "t",
    "tn",
    "translations",
    "weekday_names",
]
