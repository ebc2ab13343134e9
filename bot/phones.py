"""Phone numbers as people type them, written once in E.164 (`phonenumbers`, never by hand)."""

from __future__ import annotations

import phonenumbers


def normalize_phone(text: str, region: str = "US") -> str:
    """E.164 for anything a person might type: '(619) 555-0100' → '+16195550100'."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {text!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a phone number: {text!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
