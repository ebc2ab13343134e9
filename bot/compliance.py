"""Carrier texting rules, applied before any handler on channels whose policy says `texting`.

STOP (and its synonyms) opts the address out with one confirmation; START opts back in; HELP
answers who we are and how to reach a person. The words are the law's and the carriers', not a
feature's, so they live in the kernel; the wording of the answers comes from a plugin through
`hooks.compliance_text` and `hooks.contact_text`.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


def _word(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).strip().upper()
    return _EDGES.sub("", folded)


def keyword(text: str) -> tuple[Keyword, str] | None:
    """The compliance keyword a text is, with the word as matched; None for ordinary text."""
    word = _word(text)
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT, word
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN, word
    if word in HELP_WORDS:
        return Keyword.HELP, word
    return None
