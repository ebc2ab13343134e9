"""The message catalog is complete: every marked text has a Russian translation with the same placeholders.

The texts are found the way translators' tools find them (babel's Python extractor, the keywords
of bot/i18n.py), so a new `t(...)` without a translation fails here, not in a manager's chat.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, available, lang, t, tn

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"t": (2,), "tn": (2, 3), "N_": None, "Msg": None, "Plural": (1, 2), "UsageError": None}
PACKAGES = ("bot", "channels", "handlers", "coaching")
_FIELD = re.compile(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)(?:[:!][^}]*)?\}")


def extracted() -> dict[str | tuple[str, str], list[str]]:
    found: dict[str | tuple[str, str], list[str]] = {}
    for package in PACKAGES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=()
        ):
            if isinstance(message, tuple):
                if len(message) < 2 or not all(message[:2]):
                    continue
                key: str | tuple[str, str] = (message[0], message[1])
            elif not message:
                continue
            else:
                key = message
            found.setdefault(key, []).append(f"{package}/{filename}:{lineno}")
    return found


def catalog(code: str) -> dict[str | tuple[str, str], str | tuple[str, ...]]:
    with (LOCALES_DIR / code / "LC_MESSAGES" / "huddle.po").open("rb") as fh:
        cat = read_po(fh, locale=code)
    out: dict[str | tuple[str, str], str | tuple[str, ...]] = {}
    for m in cat:
        if not m.id or m.fuzzy:
            continue
        key = tuple(m.id) if isinstance(m.id, (tuple, list)) else m.id
        out[key] = tuple(m.string) if isinstance(m.string, (tuple, list)) else m.string
    return out


def fields(text: str) -> set[str]:
    return set(_FIELD.findall(text))


def test_every_text_has_a_russian_translation_with_the_same_placeholders() -> None:
    texts = extracted()
    assert len(texts) > 100  # the extractor really found the texts
    ru = catalog("ru")
    missing = [f"{k!r} ({where[0]})" for k, where in texts.items() if not ru.get(k)
               or (isinstance(ru[k], tuple) and not all(ru[k]))]
    assert not missing, "untranslated:\n" + "\n".join(missing)
    wrong = []
    for k, translated in ru.items():
        if k not in texts:
            continue
        source = set().union(*(fields(s) for s in (k if isinstance(k, tuple) else (k,))))
        for s in translated if isinstance(translated, tuple) else (translated,):
            if fields(s) - source or (not isinstance(k, tuple) and fields(s) != source):
                wrong.append(f"{k!r} -> {s!r}")
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_locale_lookup_and_plurals() -> None:
    assert lang("ru-RU") == lang("ru_RU.UTF-8") == "ru" and lang(None) == "en"
    assert "ru" in available()
    assert t("ru", "Deal {id} not found.", id=5) == "Сделка 5 не найдена."
    assert t("de", "Deal {id} not found.", id=5) == "Deal 5 not found."  # no catalog: English
    one, few, many = (tn("ru", "{n} other deal unchanged", "{n} other deals unchanged", n) for n in (1, 3, 11))
    assert len({one, few, many}) == 3, (one, few, many)
    assert tn("en", "{n} other deal unchanged", "{n} other deals unchanged", 1) == "1 other deal unchanged"
