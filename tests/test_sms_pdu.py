"""The PDU codec against published examples, an independent decoder (smspdudecoder) and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smspdudecoder.easy import read_incoming_sms, read_outgoing_sms

from channels.sms import pdu
from channels.sms.pdu import Encoding, PduError, TooLong

HELLO = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=700)
gsm_texts = st.text(st.sampled_from([c for c in pdu.GSM7_BASIC if c != "\x1b"] + list(pdu.GSM7_EXT)), max_size=700)


def same_as_oracle(ours: str, oracle: str) -> bool:
    """smspdudecoder slices 7-bit text by septets after decoding escapes, so a part with extension
    characters may show the zero padding bits as trailing '@'; that is its bug, not a difference."""
    return oracle == ours or (oracle.startswith(ours) and set(oracle[len(ours):]) == {"@"})


def test_published_deliver_example() -> None:
    d = pdu.decode_deliver(HELLO)
    assert d.text == "hellohello"
    assert d.sender == "27838890001"  # national type of number: no plus
    assert d.smsc == "+27381000015"
    assert d.timestamp == datetime(1999, 3, 29, 15, 16, 59, tzinfo=timezone(timedelta(hours=2)))
    assert d.concat is None


def test_tpdu_length_says_whether_an_smsc_prefix_is_there() -> None:
    without = HELLO[16:]
    assert pdu.decode_deliver(without, tpdu_length=len(without) // 2).text == "hellohello"


def test_alphanumeric_sender_and_negative_zone() -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-7)))
    [h] = pdu.encode_deliver("Store", "hi", when)
    d = pdu.decode_deliver(h)
    assert (d.sender, d.text, d.timestamp) == ("Store", "hi", when)


def test_extension_table_characters_take_two_septets() -> None:
    text = "€[]{}|^~\\"
    assert pdu.choose_encoding(text) is Encoding.GSM7
    assert len(pdu.gsm7_encode(text)) == 18
    assert pdu.gsm7_decode(pdu.gsm7_encode(text)) == text


@pytest.mark.parametrize(
    ("text", "parts"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1), ("€" * 81, 2),
     ("é" * 160, 1), ("ü" * 161, 2), ("ж" * 70, 1), ("ж" * 71, 2), ("😀" * 35, 1), ("😀" * 36, 2)],
)
def test_part_limits(text: str, parts: int) -> None:
    assert pdu.count_parts(text) == parts


def test_escape_pair_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10
    _, pieces = pdu.split_text(text)
    assert pieces[0] == "a" * 152 and pieces[1].startswith("€")


def test_surrogate_pair_never_split() -> None:
    text = "ж" * 66 + "😀" + "x" * 5
    _, pieces = pdu.split_text(text)
    assert pieces[0] == "ж" * 66 and pieces[1] == "😀xxxxx"


def test_submit_header_fields() -> None:
    [p] = pdu.encode_submit("+15551234567", "hi", reference=9)
    raw = bytes.fromhex(p.hex)
    assert raw[0] == 0  # modem's own SMSC
    assert raw[1] == 0x31  # SUBMIT, relative validity, status report requested
    assert p.tpdu_length == len(raw) - 1


def test_refused_over_max_parts_never_truncated() -> None:
    with pytest.raises(TooLong) as exc:
        pdu.encode_submit("+15551234567", "x" * 2000, max_parts=10)
    assert exc.value.parts == 14


def test_bad_numbers_refused() -> None:
    for bad in ["", "+", "hello", "+1 555 abc"]:
        with pytest.raises(ValueError):
            pdu.encode_submit(bad, "hi")


def test_sixteen_bit_reference_decoded() -> None:
    hexes = pdu.encode_deliver("+15551234567", "z" * 400, reference=0x1234, wide_ref=True)
    decoded = [pdu.decode_deliver(h) for h in hexes]
    assert {d.concat.reference for d in decoded if d.concat} == {0x1234}
    assert pdu.join_parts(decoded) == "z" * 400


def test_ucs2_surrogate_split_by_a_broken_phone_is_rejoined() -> None:
    raw = "😀".encode("utf-16-be")
    parts = []
    for i, chunk in enumerate([raw[:2], raw[2:]], 1):
        udh = bytes([5, 0, 3, 1, 2, i])
        ud = udh + chunk
        tpdu = bytes([0x44]) + pdu.encode_address("+15551234567") + bytes([0, 8]) + pdu.encode_timestamp(
            datetime(2026, 1, 1, tzinfo=UTC)) + bytes([len(ud)]) + ud
        parts.append(pdu.decode_deliver("00" + tpdu.hex()))
    assert pdu.join_parts(parts) == "😀"


def test_status_report() -> None:
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    ok = pdu.decode_status_report(pdu.encode_status_report(42, "+15551234567", 0x00, when))
    assert (ok.reference, ok.recipient, ok.delivered, ok.final) == (42, "+15551234567", True, True)
    bad = pdu.decode_status_report(pdu.encode_status_report(43, "+15551234567", 0x46, when))
    assert (bad.delivered, bad.final, bad.reason) == (False, True, "validity period expired")
    pending = pdu.decode_status_report(pdu.encode_status_report(44, "+15551234567", 0x21, when))
    assert not pending.final


@pytest.mark.parametrize("junk", ["", "zz", "00", "0791", HELLO[:40], "07917283010010F5060B"])
def test_malformed_pdus_raise_pdu_error(junk: str) -> None:
    with pytest.raises(PduError):
        pdu.decode_deliver(junk)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_submit_decodes_with_independent_decoder(text: str) -> None:
    parts = pdu.encode_submit("+15551234567", text, reference=77, max_parts=100)
    decoded = [read_outgoing_sms(p.hex) for p in parts]
    assert {d["recipient"] for d in decoded} == {"+15551234567"}
    for d, p in zip(decoded, parts, strict=True):
        assert same_as_oracle(p.text, d["content"])
    for p in parts:
        units = sum(pdu._units(c, pdu.choose_encoding(text)) for c in p.text)
        limit = (160 if len(parts) == 1 else 153) if pdu.choose_encoding(text) is Encoding.GSM7 else (
            70 if len(parts) == 1 else 67)
        assert units <= limit


@settings(max_examples=200, deadline=None)
@given(texts, st.booleans(), st.integers(0, 65535))
def test_deliver_round_trip_and_oracle(text: str, wide: bool, ref: int) -> None:
    hexes = pdu.encode_deliver("+15551234567", text, reference=ref, wide_ref=wide)
    decoded = [pdu.decode_deliver(h) for h in hexes]
    assert pdu.join_parts(decoded) == text
    for h, d in zip(hexes, decoded, strict=True):
        assert same_as_oracle(d.text, read_incoming_sms(h)["content"])


@settings(max_examples=100, deadline=None)
@given(gsm_texts)
def test_gsm_texts_stay_seven_bit(text: str) -> None:
    parts = pdu.encode_submit("+15551234567", text, max_parts=100)
    assert all(bytes.fromhex(p.hex)[12] == 0 for p in parts)  # DCS after SCA, first, MR, DA(8), PID
    assert all(same_as_oracle(p.text, read_outgoing_sms(p.hex)["content"]) for p in parts)
    assert "".join(p.text for p in parts) == text


@settings(max_examples=200, deadline=None)
@given(texts)
def test_parts_never_split_a_character_and_stay_within_limits(text: str) -> None:
    encoding, pieces = pdu.split_text(text)
    assert "".join(pieces) == text
    single = len(pieces) == 1
    for piece in pieces:
        if encoding is Encoding.GSM7:
            assert len(pdu.gsm7_encode(piece)) <= (160 if single else 153)
        else:
            assert len(piece.encode("utf-16-be")) // 2 <= (70 if single else 67)  # strict: no lone surrogate


def test_lone_surrogate_is_refused_not_mangled() -> None:
    with pytest.raises(UnicodeEncodeError):
        pdu.encode_submit("+15551234567", "bad \ud83d text")


def test_five_thousand_emoji_and_control_characters() -> None:
    text = ("😀\x01\x07 ok\t" * 700)[:5000]
    hexes = pdu.encode_deliver("+15551234567", text, reference=3)
    assert pdu.join_parts([pdu.decode_deliver(h) for h in hexes]) == text
