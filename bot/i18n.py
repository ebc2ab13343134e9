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

To add a text: write it with `t`/`tn`/`N_` (or `UsageError("…")`), run
`pybabel extract -F babel.cfg -o /tmp/huddle.pot . && pybabel update -i /tmp/huddle.pot -d bot/locales -D huddle`
and translate the new entries in the `.po` file (it is read as it is; no compile step).
"""

from __future__ import annotations

import gettext
import io
import threading
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


__all__ = ["N_", "add_catalog_dir", "available", "lang", "t", "tn", "translations"]
