"""Place the names an export uses onto the chatters we know.

Exports are typed by people: case, spacing, accents, first/last order and nicknames drift
("Ajay Adedeji" for "Adedeji Oyeniran"). Matching goes from the surest rule to the loosest —
remembered alias, exact, swapped, containment, word prefixes ("Carlo" → "Carlos Mendes",
"ana r" → "Ana Ruiz"), then rapidfuzz `token_sort_ratio` above a cutoff — and stops at the first
rule that gives exactly one chatter. Two or more at the same rule is *ambiguous*, none at all is
*unknown* (with the closest names as a hint); both go back in plain words, and one alias
confirmed by a team lead settles the name for good.

The one matcher serves both the upload and what a team lead types (`chatter Carlo`, `log Ana: …`),
so a name that places a row in a CSV also finds the card, and the other way round.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from rapidfuzz import fuzz, process, utils

from bot.i18n import N_, Join, Msg, Plural
from channels.markup import esc

DEFAULT_CUTOFF = 85.0
AMBIGUITY_MARGIN = 5.0
"""Two fuzzy candidates closer than this are not told apart automatically."""
PREFIX_MIN = 3
"""A word must have this many letters to stand for a longer one ("Car" → "Carlos")."""
HINT_CUTOFF = 70.0
"""How close a typo must be to a chatter's name or one of its words to be offered as a hint."""
HINT_MARGIN = 10.0
"""Only hints about as close as the closest one are offered."""


def normalize_name(text: str) -> str:
    """Case, accents, punctuation and spacing removed: `" José  O'Neil-Ruiz "` → `"jose o neil ruiz"`."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    lowered = stripped.casefold()
    return " ".join(re.sub(r"[^\w]+|_", " ", lowered).split())


class How(StrEnum):
    ALIAS = "alias"
    EXACT = "exact"
    SWAPPED = "swapped"
    CONTAINED = "contained"
    PREFIX = "prefix"
    FUZZY = "fuzzy"
    AMBIGUOUS = "ambiguous"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class NameMatch:
    raw: str
    how: How
    chatter_id: int | None = None
    candidates: tuple[str, ...] = ()
    """For ambiguous names: the chatters it could be; for unknown names: the closest, if any."""
    score: float | None = None

    @property
    def placed(self) -> bool:
        return self.chatter_id is not None


@dataclass(slots=True)
class NameMatcher:
    """An index over the known chatters (id → canonical name) and the remembered aliases."""

    names: Mapping[int, str]
    aliases: Mapping[str, int] = field(default_factory=dict)
    cutoff: float = DEFAULT_CUTOFF
    _exact: dict[str, list[int]] = field(init=False)
    _sorted: dict[tuple[str, ...], list[int]] = field(init=False)
    _tokens: dict[int, frozenset[str]] = field(init=False)
    _alias: dict[str, int] = field(init=False)
    _choices: dict[int, str] = field(init=False)
    _by_token: dict[str, set[int]] = field(init=False)

    def __post_init__(self) -> None:
        self._exact = defaultdict(list)
        self._sorted = defaultdict(list)
        self._tokens = {}
        self._by_token = defaultdict(set)
        for cid, name in self.names.items():
            norm = normalize_name(name)
            self._exact[norm].append(cid)
            tokens = norm.split()
            self._sorted[tuple(sorted(tokens))].append(cid)
            self._tokens[cid] = frozenset(tokens)
            for t in tokens:
                self._by_token[t].add(cid)
        self._alias = {normalize_name(a): cid for a, cid in self.aliases.items()}
        self._choices = {cid: normalize_name(name) for cid, name in self.names.items()}

    def _result(self, raw: str, how: How, ids: Iterable[int], score: float | None = None) -> NameMatch | None:
        found = sorted(set(ids))
        if not found:
            return None
        if len(found) == 1:
            return NameMatch(raw, how, found[0], score=score)
        return NameMatch(raw, How.AMBIGUOUS, None, tuple(sorted(self.names[i] for i in found)), score)

    def match(self, raw: str) -> NameMatch:
        norm = normalize_name(raw)
        if not norm:
            return NameMatch(raw, How.UNKNOWN)
        if norm in self._alias:
            return NameMatch(raw, How.ALIAS, self._alias[norm])
        tokens = norm.split()
        found = (
            self._result(raw, How.EXACT, self._exact.get(norm, ()))
            or self._result(raw, How.SWAPPED, self._sorted.get(tuple(sorted(tokens)), ()))
            or self._result(raw, How.CONTAINED, self._contained(frozenset(tokens)))
            or self._result(raw, How.PREFIX, self._prefixed(tokens))
            or self._fuzzy(raw, norm)
        )
        return found or NameMatch(raw, How.UNKNOWN, None, self._closest(frozenset(tokens)))

    def _prefixed(self, tokens: list[str]) -> set[int]:
        """Chatters with a word starting with each word given ("carlo" → "carlos mendes")."""
        if any(len(t) < PREFIX_MIN for t in tokens[:1]) or len(tokens) > 4:
            return set()
        found: set[int] | None = None
        for i, t in enumerate(tokens):
            short_ok = i > 0  # "ana r": after a full first word, an initial is enough
            ids = {cid for word, cids in self._by_token.items() if word.startswith(t)
                   and (len(t) >= PREFIX_MIN or short_ok) for cid in cids}
            found = ids if found is None else found & ids
            if not found:
                return set()
        return {cid for cid in found or set() if len(tokens) <= len(self._tokens[cid])}

    def _contained(self, tokens: frozenset[str]) -> set[int]:
        """Chatters whose name holds every word given, or whose every word is in the name given."""
        candidates: set[int] = set()
        for t in tokens:
            candidates |= self._by_token.get(t, set())
        return {cid for cid in candidates if tokens <= self._tokens[cid] or self._tokens[cid] <= tokens}

    def _fuzzy(self, raw: str, norm: str) -> NameMatch | None:
        hits = process.extract(
            norm, self._choices, scorer=fuzz.token_sort_ratio, processor=utils.default_process,
            score_cutoff=self.cutoff, limit=3,
        )
        if not hits:
            return None
        best = hits[0][1]
        close = [key for _, score, key in hits if best - score < AMBIGUITY_MARGIN]
        return self._result(raw, How.FUZZY, close, best)

    def _closest(self, tokens: frozenset[str]) -> tuple[str, ...]:
        """A hint for an unknown name: chatters sharing a word with it (e.g. a surname), else a
        chatter with a word close to one given (a typo: "Carlso" → Carlos Mendes)."""
        shared: set[int] = set()
        for t in tokens:
            if len(t) > 2:
                shared |= self._by_token.get(t, set())
        if not shared:
            for t in tokens:
                if len(t) < PREFIX_MIN:
                    shared |= {cid for word, cids in self._by_token.items() if len(t) == 2 and word.startswith(t)
                               for cid in cids}
                    continue
                hits = process.extract(t, list(self._by_token), scorer=fuzz.ratio, score_cutoff=HINT_CUTOFF, limit=3)
                for word, score, _ in hits:
                    if hits[0][1] - score < HINT_MARGIN:
                        shared |= self._by_token[word]
        return tuple(sorted(self.names[i] for i in shared))[:3]


# What a team lead reads about names (the message catalog takes these from here).
COULD_BE = N_("{name} (could be {candidates})")
MAYBE = N_("{name} (maybe {candidates}?)")
OR = N_(" or ")
UNPLACED_MORE = N_(", and {n} more")
AMBIGUOUS = N_("“{name}” could be {candidates}. Which one? Use the full name.")
UNKNOWN = N_("I don't know a chatter called “{name}”.{hint}")
DID_YOU_MEAN = N_(" Did you mean {candidates}?")


class Either(Join):
    """Names joined with the reader's word for "or" (`Ana Ruiz or Ana Rios`), escaped for markup."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__(OR, [esc(n) for n in names])

    def render(self, locale: str | None) -> str:
        return Msg(OR).render(locale).join(str(i) for i in self.items)


def either(names: Iterable[str]) -> Either:
    return Either(names)


def unknown_name(match: NameMatch) -> Msg:
    """Why a name a team lead typed finds no chatter: which ones it could be, or the closest."""
    if match.how is How.AMBIGUOUS:
        return Msg(AMBIGUOUS, name=esc(match.raw), candidates=either(match.candidates))
    hint = Msg(DID_YOU_MEAN, candidates=either(match.candidates)) if match.candidates else ""
    return Msg(UNKNOWN, name=esc(match.raw), hint=hint)


def describe_unplaced(matches: Iterable[NameMatch], limit: int = 10) -> Msg | str:
    """`3 names I couldn't place: Ajay Adedeji (maybe Adedeji Oyeniran?), …` — in the reader's words."""
    items = list(matches)
    if not items:
        return ""
    parts: list[object] = []
    for m in items[:limit]:
        if m.how is How.AMBIGUOUS:
            parts.append(Msg(COULD_BE, name=esc(m.raw), candidates=either(m.candidates)))
        elif m.candidates:
            parts.append(Msg(MAYBE, name=esc(m.raw), candidates=either(m.candidates)))
        else:
            parts.append(esc(m.raw))
    more = Msg(UNPLACED_MORE, n=len(items) - limit) if len(items) > limit else ""
    return Plural("{n} name I couldn't place: {names}{more}", "{n} names I couldn't place: {names}{more}", len(items),
                  names=Join("; ", parts), more=more)


def short_names(names: Iterable[str]) -> dict[str, str]:
    """Each name → its first word where no other name shares it, else the whole name (replies)."""
    items = list(dict.fromkeys(names))
    firsts: dict[str, int] = defaultdict(int)
    for n in items:
        firsts[normalize_name(n).split(" ")[0]] += 1
    return {n: n.split()[0] if n.split() and firsts[normalize_name(n).split(" ")[0]] == 1 else n for n in items}
