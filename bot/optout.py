"""Does this text ask us to stop texting? Deterministic rules, no model, no network.

The rule we follow (US: TCPA as amended by FCC 24-18, 47 CFR § 64.1200(a)(10)–(12), in force
since April 2025; CTIA's messaging principles): a reply of **stop, quit, end, revoke, opt out,
cancel or unsubscribe** revokes consent *per se*, and so does **any other wording a reasonable
person would read as a wish to stop** ("please don't text me anymore", "take me off your list",
"no más mensajes"). The carriers' own keyword lists add STOPALL, OPTOUT, REMOVE (Twilio, Telnyx,
AWS). Refusing a clear request because it was not the exact word is what the rule forbids, so
this matcher leans to opting out; it only has to stay clear of texts in which "stop" is an
ordinary word ("what time do you stop selling?", "can I stop by?").

A text opts out when one of its sentences

1. **is a keyword**, in any case, with punctuation and filler around it: `Stop.`, `STOP!`,
   `stop please`, `Stop. Thank you`, `ok STOP ALL`, `unsubscribe me`, Spanish `ALTO`, `PARAR`,
   `BASTA`, `BAJA`, `no más` — and a keyword with one slip of the thumb (`stpo`, `unsubscibe`);
2. **contains an unambiguous opt-out word** anywhere: unsubscribe, opt out, stopall, revoke,
   darme de baja, desuscribir;
3. **aims a stop word at our messages**: stop / quit / end / cancel / cease / discontinue
   followed, with only small words between, by texts, messages, texting, sending, contacting,
   spam, promos…: `Stop texting me`, `quit sending me these`, `discontinue any further texts`;
   or our messages followed by "stop": `I would like the text messages to stop`;
4. **refuses our messages**: don't / do not / never / no more / no longer (want…) + text,
   message, contact: `please don't text me anymore`, `I don't want these texts`, `no more
   messages`; Spanish `no me manden mensajes`, `dejen de escribirme`, `no quiero recibir mensajes`;
5. **asks to be removed**: take me off your list, remove my number, lose my number, leave me
   alone, wrong number.

What matches and what does not is measured on a corpus of real-world phrasings
(`tests/data/optout_corpus.csv`, sources noted there) by `tests/test_optout.py` (100 % recall is
asserted) and `python -m bench.optout` (recall and false positives against the old exact-word
rule).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import OSA

KEYWORDS: frozenset[str] = frozenset({
    # the FCC's per-se list and the carriers' (Twilio, Telnyx, AWS End User Messaging)
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "optout", "opt out", "revoke",
    "remove", "unsub", "stop2quit", "arret",
    # Spanish
    "alto", "parar", "para", "basta", "baja", "cancelar", "no mas", "detener", "darme de baja", "de baja",
})
"""A sentence that is only one of these (with filler) opts out."""

_FILLER = frozenset({
    "please", "pls", "plz", "plse", "pleas", "plea", "thanks", "thank", "thankyou", "thx", "tks", "ty", "you", "u",
    "now", "ok", "okay", "k", "just", "yes", "yeah", "hi", "hello", "hey", "all", "me", "it", "this", "that",
    "asap", "immediately", "already", "right", "away", "sir", "maam", "guys", "again", "i", "said", "lol",
    "por", "favor", "porfavor", "gracias", "ya", "ahora", "si", "hola", "oye", "mi",
    "to", "2", "and", "dammit", "damn", "idiots", "idiot", "seriously", "sent", "with",
})

_UNAMBIGUOUS = re.compile(
    r"\b(unsubscribe\w*|unsub|unsuscribe|stopall|opt ?out|opted out|opting out|revoke|revoking|"
    r"cease and desist|desuscrib\w*|darme de baja|dar de baja|dame de baja|denme de baja|cancelar (mi )?suscripcion)\b"
)

_NOUNS = (
    r"(texts?|texting|text messages?|txts?|txting|messages?|messaging|msgs?|sms|mms|spam\w*|notifications?|"
    r"alerts?|promos?|promotions?|ads|adverts?|advertisements?|marketing|subscriptions?|coupons?|reminders?|"
    r"updates|communications?|mensajes?|textos?|notificacion\w*|promocion\w*)"
)
_CONTACT = r"(contact\w*|calling|calls|bother\w*|harass\w*)"
_GLUE = (
    r"(?:(?:me|us|my|the|these|those|this|that|your|ur|all|any|further|more|with|them|future|of your|"
    r"you|yall|guys|please|pls|already|now|ever|again|such|stupid|damn|fucking|freaking|annoying|constant)\s+)"
)
_STOP_VERB = r"(stop\w*|quit|end|cancel|cease|discontinue|halt)"
_AIMED = re.compile(rf"\b{_STOP_VERB}\s+{_GLUE}{{0,4}}({_NOUNS}|{_CONTACT})\b")
_STOP_SENDING = re.compile(
    r"\b(stop|quit|cease|discontinue)\s+(sending|send)(\s+(me|us))?"
    r"(\s+(these|this|those|that|the|your|ur|any|all|such|more|stupid|damn))*"
    rf"(\s+(stuff|crap|junk|things|shit|{_NOUNS}))?(\s+(please|pls|thanks|thank you|now|ok|already|asap))*\s*$"
)
_NOUNS_STOP = re.compile(
    r"\b(texts|text messages?|the text|txts|messages|msgs|notifications|alerts|promos|spam|mensajes|textos)"
    r"\s+(?:\w+\s+){0,2}(to\s+)?(stop|cease)\b(?!\s+(by|in|at|over|selling|serving|working))"
    r"|\btext\s+to\s+stop\b(?!\s+(by|in|at|over))"
)
_REFUSE = re.compile(
    r"\b(dont|do not|never|pls dont|please dont)\s+(?:(?:ever|again|even|you|u|ever again)\s+)*"
    r"(text|txt|texting|message|messaging|msg|sms|contact|spam|call|bother|email)\w*\b"
    rf"|\b(dont|do not|never)\s+send\s+(me\s+|us\s+)?(?:(?:any|more|these|those|the|your|ur|such)\s+)*{_NOUNS}\b"
    rf"|\b(dont|do not|no longer|never|not interested|dont really|do not really)\s+(?:(?:want|wish|need|like|"
    rf"care|interested|in|to|receive|receiving|get|getting|any|more|these|those|your|ur|further|the|for|wanna|"
    rf"want to|anymore)\s+){{1,5}}{_NOUNS}\b"
    rf"|\b(no more|nomore|enough)\s+(?:(?:of|your|ur|these|the|with)\s+){{0,2}}{_NOUNS}\b"
)
_SPANISH_REFUSE = re.compile(
    r"\b(no|ya no|nunca)\s+(me\s+|nos\s+)?(vuelvan a\s+|vuelvas a\s+)?"
    r"(manden|mandes|envien|envies|escriban|escribas|contacten|contactes|molesten|molestes|textees|texteen|"
    r"llamen)\b"
    r"|\b(deja|dejen|dejar|deje|paren|para|pare)\s+de\s+(enviar|mandar|escribir|molestar|contactar|textear)\w*"
    r"|\bno\s+(quiero|deseo|necesito)\s+(?:(?:recibir|mas|sus|tus|los|estos|ningun|ninguno)\s+){0,3}"
    r"(mensaje\w*|texto\w*|sms|notificacion\w*|promocion\w*)"
    r"|\b(no mas|basta de|ya basta de)\s+(?:(?:de|los|sus|tus|estos)\s+){0,2}(mensaje\w*|texto\w*|sms|spam)"
    r"|\b(sacame|sacarme|saquenme|quitame|quitenme|borrame|borrenme|eliminame|eliminenme)\b"
    r"|\b(borra|borren|elimina|eliminen|quita|quiten)\s+(mi|este)\s+(numero|telefono|celular)"
)
_REMOVE = re.compile(
    r"\b(take|get|remove|delete|drop|erase|scratch|cross)\s+(me|us|my number|my name|this number|my phone|"
    r"my cell|my info)\s+(off|from|out)\b"
    r"|\b(lose|delete|remove|erase|forget|drop)\s+(my|this)\s+(number|phone|cell|contact|info)\b"
    r"|\b(take|remove|delete|get)\s+(me\s+)?off\s+(of\s+)?(this|your|the|ur|that)\s+(list|texts?|messages?)\b"
    r"|\bleave me alone\b|\bopt(ed)?\s+me\s+out\b"
    r"|^(\w+\s+){0,3}wrong (number|person|phone|#)(\s+(sorry|lol|buddy|dude|pal|bro))?$"
    r"|\bnot (the right|the correct) (person|number)\b"
)

_SENTENCE = re.compile(r"[.!?;\n¡¿]+")
_NON_WORD = re.compile(r"[^\w#]+")
_TYPO_TARGETS = ("unsubscribe", "cancel", "stopall", "optout", "revoke", "remove", "cancelar", "desuscribir")
_STOP_ANAGRAMS = frozenset({"stop", "pots", "tops", "spot", "post", "opts"})
"""Real words made of the letters of "stop": not typos of it."""
_DISMISSALS = frozenset({
    "fuck off", "fuckoff", "f off", "eff off", "go away", "shut up", "fuck you", "f u", "fu", "screw you",
    "piss off", "eat shit", "get lost", "bugger off", "leave me alone", "block", "delete", "opt",
})
"""Replies that tell the sender to go away; they revoke consent as plainly as STOP (meera.ai, Scale to Win)."""
_JOINED = tuple(p for p in _DISMISSALS if " " in p)
"""Dismissals kept whole before filler goes ("go away": "away" alone is filler, as in "stop right away")."""
_PHRASES = KEYWORDS | _DISMISSALS | {p.replace(" ", "_") for p in _JOINED}
_WORDS = frozenset(w for w in _PHRASES if " " not in w)
_JOINABLE = tuple(sorted(_WORDS | {"to", "2"}, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class OptOutMatch:
    rule: str
    """Which rule matched: keyword, typo, unambiguous, aimed, refuse, remove."""
    sentence: str


def normalise(text: str) -> str:
    """Lower case, accents and apostrophes gone, punctuation to spaces: `¡No MÁS!` → `no mas`."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("’", "'").replace("`", "'").replace("'", "")
    return " ".join(_NON_WORD.sub(" ", text).split())


def _sentences(text: str) -> list[str]:
    parts = [normalise(p) for p in _SENTENCE.split(text)]
    return [p for p in parts if p]


_MAX_KEYWORD_WORDS = 12
"""A keyword reply is short ("stop stop stop", "ok STOP ALL thanks"); longer texts go to the other rules."""


def _covered_by(items: list[str], phrases: frozenset[str] | set[str], max_size: int) -> bool:
    """`items` split, in order, into members of `phrases` of 1..max_size items (dynamic programming)."""
    ok = [True] + [False] * len(items)
    for end in range(1, len(items) + 1):
        ok[end] = any(ok[end - size] and " ".join(items[end - size:end]) in phrases
                      for size in range(1, min(max_size, end) + 1))
    return ok[-1]


def _segments(token: str) -> bool:
    """A run-together keyword reply: `quitend`, `stoptoquit`, `optstop`, `stop2quit`."""
    if len(token) > 40:
        return False
    ok = [True] + [False] * len(token)
    for end in range(1, len(token) + 1):
        ok[end] = any(ok[end - len(w)] and token.endswith(w, 0, end) for w in _JOINABLE if len(w) <= end)
    return ok[-1]


def _covered(core: list[str]) -> bool:
    """Every word of `core` belongs to a keyword or dismissal phrase (1-3 words), in order."""
    if len(core) > _MAX_KEYWORD_WORDS:
        return False
    words = [w if w in _PHRASES or len(w) <= 4 or not _segments(w) else "_joined_" for w in core]
    return _covered_by(words, _PHRASES | {"_joined_"}, 3)


def _is_keyword(words: list[str]) -> str | None:
    """`words` without filler is only keywords ("stop", "stop stop", "end remove"); the rule that matched."""
    joined = " ".join(words)
    for phrase in _JOINED:
        if phrase in joined:
            joined = re.sub(rf"\b{phrase}\b", phrase.replace(" ", "_"), joined)
    core = [w for w in joined.split() if w not in _FILLER]
    if not core:
        return None
    if _covered(core):
        return "keyword"
    if len(core) <= 2 and _typo("".join(core)):
        return "typo"
    return None


def _typo(word: str) -> bool:
    """One slip (a swap, a doubled or missing letter) in a long keyword; `stop` only swapped/doubled."""
    if not word.isalpha():
        return False
    if sorted(word) == sorted("stop") and word not in _STOP_ANAGRAMS:
        return True
    if re.fullmatch(r"s+t+o+p+", word) and len(word) == 5:
        return True
    for target in _TYPO_TARGETS:
        limit = 1 if len(target) < 9 else 2
        if abs(len(word) - len(target)) <= limit and OSA.distance(word, target) <= limit:
            return True
    return False


_NEGATION = re.compile(r"\b(dont|do not|never|not|cant|cannot|wont|didnt|shouldnt|wouldnt|please dont)\s+$")


def _aimed(sentence: str) -> bool:
    """Rule 3, unless the stop word is negated: "please don't stop texting me" asks for more."""
    for pattern in (_AIMED, _STOP_SENDING):
        for found in pattern.finditer(sentence):
            if not _NEGATION.search(sentence[:found.start()]):
                return True
    return bool(_NOUNS_STOP.search(sentence))


def match(text: str) -> OptOutMatch | None:
    """The first rule this text matches, or None when it does not ask to stop."""
    if not text or not text.strip():
        return None
    for sentence in _sentences(text):
        words = sentence.split()
        rule = _is_keyword(words)
        if rule:
            return OptOutMatch(rule, sentence)
        if _UNAMBIGUOUS.search(sentence):
            return OptOutMatch("unambiguous", sentence)
        if _aimed(sentence):
            return OptOutMatch("aimed", sentence)
        if _REFUSE.search(sentence) or _SPANISH_REFUSE.search(sentence):
            return OptOutMatch("refuse", sentence)
        if _REMOVE.search(sentence):
            return OptOutMatch("remove", sentence)
    return None


def is_opt_out(text: str) -> bool:
    return match(text) is not None


OPT_IN_WORDS = frozenset({"start", "unstop", "subscribe", "resubscribe", "yes start", "comenzar", "iniciar"})
HELP_WORDS = frozenset({"help", "info", "ayuda"})


def is_opt_in(text: str) -> bool:
    """START / UNSTOP (and their Spanish), alone with filler: opting back in needs a clear word."""
    return _only(text, OPT_IN_WORDS)


def is_help(text: str) -> bool:
    return _only(text, HELP_WORDS)


def _only(text: str, words: frozenset[str]) -> bool:
    core = [w for w in normalise(text).split() if w not in _FILLER]
    return bool(core) and " ".join(core) in words


__all__ = ["HELP_WORDS", "KEYWORDS", "OPT_IN_WORDS", "OptOutMatch", "is_help", "is_opt_in", "is_opt_out", "match",
           "normalise"]
