"""Placing the names an export uses onto the chatters we know."""

from __future__ import annotations

from coaching.names import How, NameMatcher, describe_unplaced, normalize_name

ROSTER = {1: "Adedeji Oyeniran", 2: "Ana Ruiz", 3: "Ana Gómez", 4: "Maria Lopez", 5: "Jonathan Smith",
          6: "Chloé O'Neil"}


def matcher(**aliases: int) -> NameMatcher:
    return NameMatcher(ROSTER, {k.replace("_", " "): v for k, v in aliases.items()})


def test_normalise_case_spacing_accents_punctuation() -> None:
    assert normalize_name("  José   O'Neil-Ruiz ") == "jose o neil ruiz"
    assert normalize_name("ANA\tRUIZ") == "ana ruiz"


def test_exact_after_normalising() -> None:
    m = matcher()
    assert m.match("ana ruiz").chatter_id == 2 and m.match("ana ruiz").how is How.EXACT
    assert m.match("ANA  GOMEZ").chatter_id == 3
    assert m.match("chloe oneil").how is How.FUZZY  # the apostrophe splits the word in the roster name
    assert m.match("Chloe O'Neil").chatter_id == 6


def test_first_and_last_swapped() -> None:
    result = matcher().match("Oyeniran Adedeji")
    assert result.how is How.SWAPPED and result.chatter_id == 1


def test_containment_either_way() -> None:
    assert matcher().match("Maria Jose Lopez").how is How.CONTAINED
    assert matcher().match("Jonathan").chatter_id == 5


def test_fuzzy_typo_above_cutoff() -> None:
    result = matcher().match("Jonathon Smith")
    assert result.how is How.FUZZY and result.chatter_id == 5 and result.score and result.score >= 85


def test_ambiguous_lists_the_candidates() -> None:
    result = matcher().match("Ana")
    assert result.how is How.AMBIGUOUS and result.chatter_id is None
    assert result.candidates == ("Ana Gómez", "Ana Ruiz")


def test_real_world_mismatch_is_unknown_with_a_hint_until_an_alias_is_confirmed() -> None:
    result = matcher().match("Ajay Adedeji")
    assert result.how is How.UNKNOWN and result.chatter_id is None
    assert result.candidates == ("Adedeji Oyeniran",)
    confirmed = matcher(Ajay_Adedeji=1).match("ajay  adedeji")
    assert confirmed.how is How.ALIAS and confirmed.chatter_id == 1


def test_unknown_and_empty() -> None:
    assert matcher().match("Zed Zulu").how is How.UNKNOWN
    assert matcher().match("   ").how is How.UNKNOWN
    assert matcher().match("😀" * 5000).how is How.UNKNOWN


def test_cutoff_is_configurable() -> None:
    strict = NameMatcher(ROSTER, cutoff=99)
    assert strict.match("Jonathon Smith").chatter_id is None


def test_plain_words_for_the_uploader() -> None:
    m = matcher()
    said = describe_unplaced([m.match("Ajay Adedeji"), m.match("Ana"), m.match("Zed Zulu")])
    text = str(said)  # English; the reply renders it in the reader's language
    assert said.render("ru").startswith("Не удалось сопоставить 3 имени: Ajay Adedeji (возможно, Adedeji Oyeniran?)")
    assert text.startswith("3 names I couldn't place:")
    assert "Ajay Adedeji (maybe Adedeji Oyeniran?)" in text
    assert "Ana (could be Ana Gómez or Ana Ruiz)" in text
    assert "mismatch" not in text
