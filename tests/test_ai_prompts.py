"""Prompt templates: `$var` substitution from prompts/<name>.txt, loud on anything missing."""

from __future__ import annotations

import pytest

from coaching.prompts import PromptError, load_prompt, prompt_names


def test_substitutes_values_and_keeps_literal_dollars() -> None:
    text = load_prompt("example", person="Sarah", limit=40)
    assert "for Sarah." in text and "at most 40 words" in text
    assert "Prices are in $ (US dollars)." in text


def test_missing_value_is_an_error() -> None:
    with pytest.raises(PromptError, match=r"\$limit"):
        load_prompt("example", person="Sarah")


def test_unknown_or_unsafe_name_is_an_error() -> None:
    with pytest.raises(PromptError, match="no prompt"):
        load_prompt("does_not_exist")
    with pytest.raises(PromptError, match="bad prompt name"):
        load_prompt("../pyproject")


def test_values_are_not_reinterpreted() -> None:
    text = load_prompt("example", person="$limit ${person} 💥" * 3, limit=1)
    assert "$limit ${person} 💥" in text


def test_names_are_listed() -> None:
    assert "example" in prompt_names()
