"""Phone numbers and SMS senders, read the way networks and people actually write them.

Everything is parsed by `phonenumbers` (Google's libphonenumber metadata); nothing here knows an
area code or a number length. What this module decides is only *which reading* to trust:

* `+16195550100`, `+44 20 7946 0958`: international, whatever the region.
* `(619) 555-0100`, `0612345678`: national, in the region (`HUDDLE_DEFAULT_REGION`, or the
  store's country when `[[stores]]` names one).
* `011 44 20 7946 0958`, `00 33 6 12 34 56 78`: an international prefix. phonenumbers strips the
  region's own prefix (011 in the US); `00`, the prefix of most of the world, is read as one too
  when the national reading is not a real number.
* `447700900123`, `33612345678`: international digits without the `+` (a PDU whose type of
  number was "unknown", a CSV that dropped the plus). The national reading wins when it is a
  valid number; otherwise the international one does when *it* is valid.

Numbers that are merely *possible* (the right length, as the fictional `+1 555 …` numbers of
demos and tests) are accepted when nothing better exists, as before.

`sender_kind` sorts what arrives in an SMS's originating address: a phone number (a person who
can be a customer), a short code (`22000`: a business's service; it may be answered but gets no
marketing and never becomes a lead) or an alphanumeric sender (`AMAZON`, `O2`, `Store 42`: it
cannot be answered at all). A digit string that is neither a number nor a short code cannot be
answered either, so it is treated like an alphanumeric sender.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, shortnumberinfo

DEFAULT_REGION = "US"
_region = DEFAULT_REGION

_INTERNATIONAL_PREFIXES = ("011", "00")
"""Dialled before a country code: 011 in North America, 00 nearly everywhere else (ITU E.164 annex)."""
_LETTER = re.compile(r"[^\W\d_]")
_SEPARATORS = re.compile(r"[\s().\-/]")


class SenderKind(StrEnum):
    PHONE = "phone"
    SHORT_CODE = "short_code"
    ALPHANUMERIC = "alphanumeric"

    @property
    def can_reply(self) -> bool:
        """Whether a text sent to this sender can arrive at all."""
        return self is not SenderKind.ALPHANUMERIC

    @property
    def can_market(self) -> bool:
        """Proactive messages (coaching, promotions, playbooks) go to people's phones only."""
        return self is SenderKind.PHONE


def check_region(value: str) -> str:
    """A validator: an ISO 3166 region phonenumbers knows (`US`, `GB`, `DE`…), upper-cased."""
    region = (value or "").strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {value!r} (use a two-letter country code like US, GB or DE)")
    return region


def set_default_region(region: str) -> None:
    """The region national numbers are read in (the app sets it at start from its settings)."""
    global _region
    _region = check_region(region)


def default_region() -> str:
    return _region


def region_of(number: str) -> str | None:
    """The region an international number belongs to (`+442079460958` → `GB`), if known."""
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed)


def _parse(text: str, region: str | None) -> PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


def _full(number: PhoneNumber | None) -> bool:
    """Possible as a whole number (not only locally dialable, not too short or long)."""
    return number is not None and phonenumbers.is_possible_number_with_reason(number) == \
        phonenumbers.ValidationResult.IS_POSSIBLE


def _valid(number: PhoneNumber | None) -> bool:
    return _full(number) and phonenumbers.is_valid_number(number)  # type: ignore[arg-type]


def _digits(text: str) -> str:
    return _SEPARATORS.sub("", text)


def _international_reading(digits: str) -> tuple[PhoneNumber | None, bool]:
    """The digits read as an international number, and whether an international prefix said so."""
    if not digits.isdigit():
        return None, False
    for prefix in _INTERNATIONAL_PREFIXES:
        if digits.startswith(prefix):
            return _parse("+" + digits[len(prefix):], None), True
    return _parse("+" + digits, None), False


def parse_phone(text: str, region: str | None = None) -> PhoneNumber:
    """The number `text` most plausibly means, or ValueError when it is not a phone number.

    A national reading that is a real number always wins. The international reading of bare
    digits wins only when the national one cannot even be a number of that region (too long,
    too short), so a fictional national `555 123 4567` never turns into a number in Brazil;
    after an explicit `00`/`011` it wins whenever it is a valid number.
    """
    raw = (text or "").strip()
    if not raw:
        raise ValueError("not a phone number: empty")
    if raw.startswith("+"):
        number = _parse(raw, None)
        if _full(number):
            return number  # type: ignore[return-value]
        raise ValueError(f"not a phone number: {text!r}")
    national = _parse(raw, region or _region)
    if _valid(national):
        return national  # type: ignore[return-value]
    international, prefixed = _international_reading(_digits(raw))
    if _full(national):
        if prefixed and _valid(international):
            return international  # type: ignore[return-value]
        return national  # type: ignore[return-value]
    if _full(international):
        return international  # type: ignore[return-value]
    raise ValueError(f"not a phone number: {text!r}")


def normalize_phone(text: str, region: str | None = None) -> str:
    """E.164 for anything a person or a network might write: '(619) 555-0100' → '+16195550100'."""
    return _e164(text, region or _region)


@lru_cache(maxsize=8192)
def _e164(text: str, region: str) -> str:
    return phonenumbers.format_number(parse_phone(text, region), PhoneNumberFormat.E164)


def sender_kind(sender: str, region: str | None = None) -> SenderKind:
    """What kind of SMS sender this originating address is (see the module docstring)."""
    return _sender_kind(sender or "", region or _region)


@lru_cache(maxsize=8192)
def _sender_kind(sender: str, region: str) -> SenderKind:
    """Cached: the router asks this for every text, and the same few senders write again and again."""
    text = sender.strip()
    if not text or _LETTER.search(text):
        return SenderKind.ALPHANUMERIC
    digits = _digits(text).lstrip("+")
    if digits.isdigit() and len(digits) <= 8:
        # Before the phone reading: in regions with variable-length numbers (DE, AT) a 5-digit
        # code is also a "possible" local number, but only a valid one is a person's phone.
        short = _parse(digits, region)
        if short is not None and shortnumberinfo.is_possible_short_number_for_region(short, region) \
                and not phonenumbers.is_valid_number(short):
            return SenderKind.SHORT_CODE
    try:
        parse_phone(text, region)
        return SenderKind.PHONE
    except ValueError:
        return SenderKind.ALPHANUMERIC


def normalize_sender(sender: str, region: str | None = None) -> str:
    """The form a sender is stored under: E.164 for a phone, the digits of a short code, else as sent."""
    kind = sender_kind(sender, region)
    if kind is SenderKind.PHONE:
        return normalize_phone(sender, region)
    if kind is SenderKind.SHORT_CODE:
        return _digits(sender.strip()).lstrip("+")
    return " ".join(sender.split())


__all__ = [
    "DEFAULT_REGION",
    "SenderKind",
    "check_region",
    "default_region",
    "normalize_phone",
    "normalize_sender",
    "parse_phone",
    "region_of",
    "sender_kind",
    "set_default_region",
]
