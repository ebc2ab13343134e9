"""SMS PDUs (3GPP TS 23.040 / 23.038): the bytes a modem speaks in PDU mode (`AT+CMGF=0`).

Encoding: GSM 03.38 7-bit with the extension table whenever every character fits, else UCS-2
(UTF-16BE, so emoji travel as surrogate pairs). Long texts become concatenated parts with an
8-bit reference UDH; a part boundary never falls inside an escape pair or a surrogate pair.
Decoding: SMS-DELIVER (international, national and alphanumeric senders, timestamp with zone,
8- and 16-bit concatenation UDH) and SMS-STATUS-REPORT. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum

# fmt: off
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# fmt: on
GSM7_EXT = {"\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40,
            "€": 0x65}
ESC = 0x1B
assert len(GSM7_BASIC) == 128

_BASIC_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESC}
_EXT_DECODE = {v: k for k, v in GSM7_EXT.items()}

SINGLE_SEPTETS = 160
MULTI_SEPTETS = 153
SINGLE_UCS2 = 70
MULTI_UCS2 = 67
DEFAULT_MAX_PARTS = 10
VALIDITY_24H = 0xA7


class PduError(ValueError):
    """A PDU that cannot be decoded (truncated, wrong type, bad lengths)."""


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    BINARY = "8bit"


class TooLong(ValueError):
    """The text needs more parts than allowed; it is refused, never truncated."""

    def __init__(self, parts: int, limit: int) -> None:
        super().__init__(f"message needs {parts} SMS parts, more than the limit of {limit}")
        self.parts = parts
        self.limit = limit


# -- 7-bit alphabet ---------------------------------------------------------------------------


def gsm7_septets(ch: str) -> int | None:
    """Septets `ch` takes in GSM 7-bit (1 or 2 with the escape), or None if it does not fit."""
    if ch in _BASIC_INDEX:
        return 1
    if ch in GSM7_EXT:
        return 2
    return None


def fits_gsm7(text: str) -> bool:
    return all(ch in _BASIC_INDEX or ch in GSM7_EXT for ch in text)


def gsm7_encode(text: str) -> list[int]:
    out: list[int] = []
    for ch in text:
        code = _BASIC_INDEX.get(ch)
        if code is not None:
            out.append(code)
        elif ch in GSM7_EXT:
            out += (ESC, GSM7_EXT[ch])
        else:
            raise ValueError(f"character {ch!r} is not in the GSM 7-bit alphabet")
    return out


def gsm7_decode(septets: list[int]) -> str:
    out: list[str] = []
    i = 0
    while i < len(septets):
        s = septets[i]
        if s == ESC:
            i += 1
            if i >= len(septets):
                break  # a dangling escape at the very end: nothing to show
            nxt = septets[i]
            # An unknown extension shows as its basic character (23.038 says so), never an error.
            out.append(_EXT_DECODE.get(nxt, GSM7_BASIC[nxt] if nxt != ESC else " "))
        else:
            out.append(GSM7_BASIC[s])
        i += 1
    return "".join(out)


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit values little-endian into octets, after `fill_bits` zero bits (UDH alignment)."""
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    value = int.from_bytes(data, "little")
    if (len(data) * 8 - fill_bits) // 7 < count:
        raise PduError("user data shorter than its length says")
    return [(value >> (fill_bits + 7 * i)) & 0x7F for i in range(count)]


# -- addresses and timestamps -------------------------------------------------------------------


def _swap_digits(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2)))


def _unswap_digits(data: bytes, count: int) -> str:
    text = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in data)[:count]
    return text.replace("A", "*").replace("B", "#").replace("C", "a").replace("D", "b").replace("E", "c")


def encode_address(number: str) -> bytes:
    """TP-DA: digit count, type (0x91 international for a leading +, else 0x81), swapped digits."""
    digits = number.strip()
    toa = 0x81
    if digits.startswith("+"):
        toa, digits = 0x91, digits[1:]
    if not digits or not digits.isdigit() or len(digits) > 20:
        raise ValueError(f"not a phone number: {number!r}")
    return bytes([len(digits), toa]) + _swap_digits(digits)


class Ton(StrEnum):
    """TP-OA type of number (23.040 9.1.2.5): what kind of sender an address is."""

    UNKNOWN = "unknown"
    INTERNATIONAL = "international"
    NATIONAL = "national"
    NETWORK = "network"
    SUBSCRIBER = "subscriber"
    ALPHANUMERIC = "alphanumeric"
    ABBREVIATED = "abbreviated"
    RESERVED = "reserved"


_TONS = list(Ton)


def read_address(data: bytes, pos: int) -> tuple[str, Ton, int]:
    """An address field (digit-count length) at `pos`: its text, type of number and the next position.

    International numbers get a leading `+`; national and unknown ones are the digits as sent (the
    directory knows the region to read them in); alphanumeric senders (`AMAZON`, `O2`) are GSM 7-bit
    packed text. Semi-octets A-E are `*#abc` (23.040 9.1.2.3).
    """
    if pos + 2 > len(data):
        raise PduError("address runs past the end")
    ndigits, toa = data[pos], data[pos + 1]
    nbytes = (ndigits + 1) // 2
    raw = data[pos + 2 : pos + 2 + nbytes]
    if len(raw) != nbytes:
        raise PduError("address runs past the end")
    end = pos + 2 + nbytes
    ton = _TONS[(toa >> 4) & 0x07]
    if ton is Ton.ALPHANUMERIC:
        # The digit count covers the packed septets; a count rounded up to whole octets leaves one
        # septet of padding bits, which reads as a trailing '@' (no sender name ends with one).
        text = gsm7_decode(unpack_septets(raw, ndigits * 4 // 7))
        return (text[:-1] if text.endswith("@") and len(text) > 1 else text), ton, end
    number = _unswap_digits(raw, ndigits)
    return ("+" + number if ton is Ton.INTERNATIONAL else number), ton, end


def decode_address(data: bytes, pos: int) -> tuple[str, int]:
    """Decode an address field at `pos`; return its text and the next position."""
    text, _ton, end = read_address(data, pos)
    return text, end


def encode_smsc(number: str | None) -> bytes:
    """The SMSC prefix of a submit PDU: a zero octet means 'use the SMSC stored in the modem'."""
    if not number:
        return b"\x00"
    digits = number.lstrip("+")
    body = bytes([0x91 if number.startswith("+") else 0x81]) + _swap_digits(digits)
    return bytes([len(body)]) + body


def _bcd(b: int) -> int:
    lo, hi = b & 0x0F, b >> 4
    if lo > 9 or hi > 9:
        raise PduError(f"bad timestamp octet {b:02X}")
    return lo * 10 + hi


def decode_timestamp(data: bytes) -> datetime:
    """TP-SCTS: swapped BCD YYMMDDhhmmss and a zone in quarter hours (bit 3 = negative)."""
    if len(data) != 7:
        raise PduError("timestamp must be 7 octets")
    y, mo, d, h, mi, s = (_bcd(b) for b in data[:6])
    tz = data[6]
    quarters = (tz & 0x07) * 10 + (tz >> 4)
    offset = timedelta(minutes=15 * quarters) * (-1 if tz & 0x08 else 1)
    century = 1900 if y >= 90 else 2000  # the published examples are from the 1990s
    try:
        return datetime(century + y, mo, d, h, mi, s, tzinfo=timezone(offset))
    except ValueError as exc:
        raise PduError(f"bad timestamp: {exc}") from exc


def encode_timestamp(when: datetime) -> bytes:
    """The inverse of `decode_timestamp` (used by the simulator to stamp what it delivers)."""
    offset = when.utcoffset() or timedelta(0)
    quarters = int(abs(offset.total_seconds()) // 900)

    def bcd(v: int) -> int:
        return ((v % 10) << 4) | (v // 10)

    tz = ((quarters % 10) << 4) | (quarters // 10) | (0x08 if offset < timedelta(0) else 0)
    return bytes([bcd(when.year % 100), bcd(when.month), bcd(when.day), bcd(when.hour), bcd(when.minute),
                  bcd(when.second), tz])


# -- splitting ----------------------------------------------------------------------------------


def choose_encoding(text: str) -> Encoding:
    return Encoding.GSM7 if fits_gsm7(text) else Encoding.UCS2


def _units(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return gsm7_septets(ch) or 0
    return 2 if ord(ch) > 0xFFFF else 1


def split_text(text: str, encoding: Encoding | None = None, wide_ref: bool = False) -> tuple[Encoding, list[str]]:
    """Cut `text` into SMS-sized pieces; a character (escape pair, surrogate pair) is never cut.

    A 16-bit reference header is one octet longer, so its parts hold one unit less.
    """
    encoding = encoding or choose_encoding(text)
    single, multi = (SINGLE_SEPTETS, MULTI_SEPTETS) if encoding is Encoding.GSM7 else (SINGLE_UCS2, MULTI_UCS2)
    multi -= 1 if wide_ref else 0
    total = sum(_units(ch, encoding) for ch in text)
    if total <= single:
        return encoding, [text]
    parts: list[str] = []
    start, used = 0, 0
    for i, ch in enumerate(text):
        n = _units(ch, encoding)
        if used + n > multi:
            parts.append(text[start:i])
            start, used = i, 0
        used += n
    parts.append(text[start:])
    return encoding, parts


def count_parts(text: str) -> int:
    return len(split_text(text)[1])


# -- SMS-SUBMIT ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    """One part ready for `AT+CMGS=<tpdu_length>` followed by `hex` and Ctrl-Z."""

    hex: str
    tpdu_length: int
    part: int
    parts: int
    text: str


def encode_submit(
    number: str,
    text: str,
    *,
    reference: int = 0,
    smsc: str | None = None,
    status_report: bool = True,
    validity: int | None = VALIDITY_24H,
    max_parts: int = DEFAULT_MAX_PARTS,
) -> list[SubmitPdu]:
    """SMS-SUBMIT PDUs for `text` to `number`; `reference` tags the parts of one long message."""
    encoding, pieces = split_text(text)
    if len(pieces) > max_parts:
        raise TooLong(len(pieces), max_parts)
    total = len(pieces)
    da = encode_address(number)
    sca = encode_smsc(smsc)
    result: list[SubmitPdu] = []
    for index, piece in enumerate(pieces, 1):
        first = 0x01  # SMS-SUBMIT
        if validity is not None:
            first |= 0x10  # relative validity period
        if status_report:
            first |= 0x20
        udh = b""
        if total > 1:
            first |= 0x40
            udh = bytes([0x05, 0x00, 0x03, reference & 0xFF, total, index])
        if encoding is Encoding.GSM7:
            dcs = 0x00
            septets = gsm7_encode(piece)
            header_septets = (len(udh) * 8 + 6) // 7
            fill = header_septets * 7 - len(udh) * 8
            ud = udh + pack_septets(septets, fill)
            udl = header_septets + len(septets)
        else:
            dcs = 0x08
            body = piece.encode("utf-16-be")
            ud = udh + body
            udl = len(ud)
        tpdu = bytes([first, 0x00]) + da + bytes([0x00, dcs])
        if validity is not None:
            tpdu += bytes([validity])
        tpdu += bytes([udl]) + ud
        result.append(SubmitPdu((sca + tpdu).hex().upper(), len(tpdu), index, total, piece))
    return result


# -- decoding ----------------------------------------------------------------------------------
#
# Everything a modem can hand us goes through `read_pdu`, which never raises: it says whether the
# PDU is a text to deliver (possibly read leniently, with notes saying what was sloppy), a status
# report, or something to hold raw (not a text, or not readable). `decode_deliver` is the strict
# view of the same code: it raises `PduError` unless a text decoded cleanly.


@dataclass(frozen=True, slots=True)
class Concat:
    reference: int
    total: int
    part: int
    wide_ref: bool = False


@dataclass(frozen=True, slots=True)
class DeliverPdu:
    sender: str
    text: str
    timestamp: datetime | None
    encoding: Encoding
    concat: Concat | None
    smsc: str | None = None
    raw_ucs2: bytes | None = None
    """For UCS-2 parts, the UTF-16 bytes: a broken phone may split a surrogate pair across parts."""
    sender_type: Ton = Ton.UNKNOWN
    notes: tuple[str, ...] = ()
    """What had to be read leniently (short user data, odd UCS-2 byte, ...); empty for a clean PDU."""
    pid: int = 0
    dcs: int = 0
    message_class: int | None = None
    port: int | None = None
    """Destination application port (UDH IE 4/5): set for WAP push and other data for an application."""


@dataclass(frozen=True, slots=True)
class StatusReportPdu:
    reference: int
    recipient: str
    status: int
    delivered: bool
    final: bool
    reason: str | None
    discharged: datetime | None


STATUS_REASONS = {
    0x41: "incompatible destination",
    0x42: "connection rejected by the phone",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "validity period expired",
    0x47: "deleted by the sender",
    0x48: "deleted by the SMSC administration",
    0x49: "message does not exist",
    0x60: "network congestion",
    0x61: "phone busy",
    0x62: "no response from the phone",
    0x63: "service rejected",
    0x64: "quality of service not available",
    0x65: "error in the phone",
}

WAP_PUSH_PORTS = frozenset({2948, 2949})
"""WAP push (WSP over SMS, 0x0B84/0x0B85): MMS notifications, service indications, OTA settings."""


class Kind(StrEnum):
    TEXT = "text"
    REPORT = "report"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class Received:
    """What one stored or pushed PDU turned out to be. Built by `read_pdu`, which never raises."""

    kind: Kind
    pdu: str
    """The PDU normalised with its SMSC prefix (`00` when the modem gave none): what is stored."""
    tpdu: str
    """The TPDU alone: the same message gives the same TPDU whichever way a modem printed it."""
    deliver: DeliverPdu | None = None
    report: StatusReportPdu | None = None
    reason: str | None = None
    """Why a PDU is held instead of delivered."""

    @property
    def notes(self) -> tuple[str, ...]:
        return self.deliver.notes if self.deliver is not None else ()


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex("".join(text.split()))
    except ValueError as exc:
        raise PduError("not hexadecimal") from exc


def _smsc_of(prefix: bytes) -> str | None:
    if len(prefix) <= 2:
        return None
    toa = prefix[1]
    digits = _unswap_digits(prefix[2:], (len(prefix) - 2) * 2).rstrip("F")
    return ("+" if (toa >> 4) & 0x07 == 1 else "") + digits


def _split_sca(data: bytes, tpdu_length: int | None) -> tuple[str | None, bytes]:
    """Strip the SMSC prefix. With the modem's TPDU length we know whether one is present."""
    if tpdu_length is not None and len(data) == tpdu_length:
        return None, data
    if not data:
        raise PduError("empty PDU")
    n = data[0]
    if 1 + n > len(data):
        raise PduError("SMSC field runs past the end")
    return _smsc_of(data[: 1 + n]), data[1 + n :]


def _layouts(data: bytes, length: int | None) -> list[tuple[int, str | None]]:
    """Ways to split `data` into SMSC prefix and TPDU, most likely first, with a note if unusual.

    27.005 says the length in `+CMGR`/`+CMGL` counts the TPDU only; some firmwares count the SMSC
    octets too, and some print the PDU without its SMSC prefix. Each reading is tried in turn.
    """
    sca = data[0] + 1 if data else 0
    fits = 0 < sca < len(data)
    if length is None:
        return [(sca, None), (0, None)] if fits else [(0, None)]
    if fits and sca + length == len(data):
        return [(sca, None), (0, "no SMSC prefix despite the length")]
    if length == len(data):
        return [(0, None)] + ([(sca, "the modem's length counts the SMSC octets")] if fits else [])
    note = f"length {length} does not match the {len(data)}-octet PDU"
    return [(sca, note), (0, note)] if fits else [(0, note)]


def _dcs_info(dcs: int) -> tuple[Encoding, int | None, str | None]:
    """(alphabet, message class, reason to hold) from TP-DCS (23.038 section 4)."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (0x4-0x7: the same, marked for automatic deletion)
        klass = dcs & 0x03 if dcs & 0x10 else None
        if dcs & 0x20:
            return Encoding.BINARY, klass, "compressed text (not supported)"
        alphabet = (dcs >> 2) & 0x03
        encoding = {0: Encoding.GSM7, 1: Encoding.BINARY, 2: Encoding.UCS2}.get(alphabet, Encoding.GSM7)
        return encoding, klass, None
    if group == 0xC:
        return Encoding.GSM7, None, "message waiting indication (discard)"
    if group == 0xD:
        return Encoding.GSM7, None, None
    if group == 0xE:
        return Encoding.UCS2, None, None
    if group == 0xF:
        return (Encoding.BINARY if dcs & 0x04 else Encoding.GSM7), dcs & 0x03, None
    return Encoding.GSM7, None, None  # reserved groups 8-B: read as the default alphabet


def _parse_udh(udh: bytes, notes: list[str] | None = None) -> tuple[Concat | None, int | None]:
    """Concatenation and destination port from a user data header."""
    concat = None
    port = None
    i = 0
    while i + 1 < len(udh):
        iei, ln = udh[i], udh[i + 1]
        val = udh[i + 2 : i + 2 + ln]
        if len(val) != ln:
            if notes is None:
                raise PduError("user data header element runs past the end")
            notes.append("user data header element runs past the end")
            break
        if iei == 0x00 and ln == 3:
            concat = Concat(val[0], val[1], val[2])
        elif iei == 0x08 and ln == 4:
            concat = Concat((val[0] << 8) | val[1], val[2], val[3], wide_ref=True)
        elif iei == 0x04 and ln == 2:
            port = val[0]
        elif iei == 0x05 and ln == 4:
            port = (val[0] << 8) | val[1]
        i += 2 + ln
    if concat is not None and (concat.total == 0 or concat.part == 0 or concat.part > concat.total):
        concat = None  # a nonsensical header: treat the part as a message on its own
    return concat, port


def _deliver_tpdu(t: bytes, smsc: str | None) -> DeliverPdu:
    """Decode an SMS-DELIVER TPDU, leniently where networks are sloppy (see `DeliverPdu.notes`).

    Strict (raises PduError): a header that cannot be read (sender address, PID, DCS, timestamp
    octets missing). Lenient (notes): user data shorter than its length, an odd trailing UCS-2
    byte, a header flag with no user data, a header running past the data, a bad timestamp.
    """
    notes: list[str] = []
    if len(t) < 2:
        raise PduError("PDU too short")
    first = t[0]
    sender, ton, pos = read_address(t, 1)
    if pos + 9 > len(t):
        raise PduError("PDU too short for its header")
    pid, dcs = t[pos], t[pos + 1]
    try:
        timestamp: datetime | None = decode_timestamp(t[pos + 2 : pos + 9])
    except PduError as exc:
        timestamp = None
        notes.append(str(exc))
    if pos + 9 == len(t):
        raise PduError("PDU ends before its user data length")
    udl, ud = t[pos + 9], t[pos + 10 :]
    encoding, klass, _hold = _dcs_info(dcs)
    concat = port = None
    udh_len = 0
    if first & 0x40:
        if not ud:
            notes.append("header flag set but no user data")
        elif ud[0] + 1 > len(ud) or (encoding is not Encoding.GSM7 and ud[0] + 1 > udl):
            notes.append("user data header runs past the data; read as text")
        else:
            udh_len = ud[0] + 1
            concat, port = _parse_udh(ud[1:udh_len], notes)
    raw = None
    if encoding is Encoding.GSM7:
        available = len(ud) * 8 // 7
        if udl > available:
            notes.append(f"user data shorter than its length ({available} of {udl} septets)")
        count = min(udl, available)
        header_septets = (udh_len * 8 + 6) // 7
        text = gsm7_decode(unpack_septets(ud, count)[header_septets:])
    else:
        if udl > len(ud):
            notes.append(f"user data shorter than its length ({len(ud)} of {udl} octets)")
        body = ud[udh_len : min(udl, len(ud))]
        if encoding is Encoding.UCS2:
            if len(body) % 2:
                notes.append("odd trailing byte in UCS-2 dropped")
            raw = body[: len(body) // 2 * 2]
            text = raw.decode("utf-16-be", "replace")
        else:
            text = body.decode("latin-1")
    return DeliverPdu(sender, text, timestamp, encoding, concat, smsc, raw, ton, tuple(notes), pid, dcs, klass,
                      port)


def _hold_reason(d: DeliverPdu) -> str | None:
    """Why a decoded SMS-DELIVER is not a text for a handler (None: it is one)."""
    if d.port in WAP_PUSH_PORTS:
        return f"WAP push (MMS notification or settings) to port {d.port}"
    if d.port is not None:
        return f"data for application port {d.port}"
    if (reason := _dcs_info(d.dcs)[2]) is not None:
        return reason
    if d.encoding is Encoding.BINARY:
        return "8-bit data"
    if d.message_class == 0:
        return "class 0 (flash) message"
    if d.pid == 0x40:
        return "type 0 (silent) message"
    return None


def _status_tpdu(t: bytes) -> StatusReportPdu:
    if len(t) < 2 or t[0] & 0x03 != 0x02:
        raise PduError("not an SMS-STATUS-REPORT")
    reference = t[1]
    recipient, pos = decode_address(t, 2)
    if pos + 15 > len(t):
        raise PduError("status report too short")
    discharged = decode_timestamp(t[pos + 7 : pos + 14])
    status = t[pos + 14]
    delivered = status < 0x20
    final = not (0x20 <= status < 0x40)
    reason = None if delivered else STATUS_REASONS.get(status, f"network status {status:#04x}")
    return StatusReportPdu(reference, recipient, status, delivered, final, reason, discharged)


def _classify(data: bytes, sca: int) -> tuple[Received, bool, int]:
    """One reading of `data`: (result, whether it parsed, how many notes). Never raises."""
    prefix, t = data[:sca], data[sca:]
    pdu_hex = (prefix.hex() if sca else "00").upper() + t.hex().upper()
    tpdu_hex = t.hex().upper()
    if not t:
        return Received(Kind.HELD, pdu_hex, tpdu_hex, reason="empty PDU"), False, 0
    mti = t[0] & 0x03
    try:
        if mti == 0x00:
            d = _deliver_tpdu(t, _smsc_of(prefix))
            if (why := _hold_reason(d)) is not None:
                return Received(Kind.HELD, pdu_hex, tpdu_hex, deliver=d, reason=why), True, len(d.notes)
            return Received(Kind.TEXT, pdu_hex, tpdu_hex, deliver=d), True, len(d.notes)
        if mti == 0x02:
            return Received(Kind.REPORT, pdu_hex, tpdu_hex, report=_status_tpdu(t)), True, 0
        if mti == 0x01:
            decode_submit(t.hex(), len(t))  # parses: an outgoing message a phone or another program stored
            return Received(Kind.HELD, pdu_hex, tpdu_hex, reason="an outgoing message (SMS-SUBMIT)"), True, 0
        raise PduError(f"reserved message type (first octet {t[0]:02X})")
    except (PduError, IndexError, ValueError) as exc:
        kind = {0: "SMS-DELIVER", 2: "status report"}.get(mti, "PDU")
        return Received(Kind.HELD, pdu_hex, tpdu_hex, reason=f"unreadable {kind}: {exc}"), False, 0


def read_pdu(pdu_hex: str, length: int | None = None, *, report: bool = False) -> Received:
    """Classify and decode what `+CMGR`, `+CMGL`, `+CMT` or `+CDS` printed. Never raises.

    `length` is the modem's announced TPDU length, if any. Every plausible layout (with or without
    the SMSC prefix) is tried; a clean reading wins, else the one with the fewest notes, else the
    PDU is held with the reason the most likely layout failed (`report`: where a status report was
    announced, the reason it could not be read as one).
    """
    try:
        data = _hex(pdu_hex)
    except PduError:
        junk = "".join(pdu_hex.split()).upper()[:2000]
        return Received(Kind.HELD, junk, junk, reason="not hexadecimal")
    if not data:
        return Received(Kind.HELD, "", "", reason="empty PDU")
    best: tuple[Received, bool, int] | None = None
    for sca, layout_note in _layouts(data, length):
        result, parsed, notes = _classify(data, sca)
        if report and not parsed and best is not None and not best[1] and "status report" in (result.reason or ""):
            best = None  # announced as a report: say why it is not one
        if parsed and layout_note is not None and result.deliver is not None:
            result = _with_note(result, layout_note)
            notes += 1
        if parsed and notes == 0:
            return result
        if best is None or (parsed and (not best[1] or notes < best[2])):
            best = (result, parsed, notes)
    assert best is not None
    return best[0]


def _with_note(result: Received, note: str) -> Received:
    d = result.deliver
    assert d is not None
    return replace(result, deliver=replace(d, notes=(*d.notes, note)))


def decode_deliver(pdu_hex: str, tpdu_length: int | None = None, *, lenient: bool = False) -> DeliverPdu:
    """Decode an SMS-DELIVER as `+CMGR`/`+CMGL` print it (with or without the SMSC prefix).

    Strict by default: raises PduError unless it decoded cleanly. `lenient=True` returns what
    could be read (see `DeliverPdu.notes`) and raises only when nothing could.
    """
    result = read_pdu(pdu_hex, tpdu_length)
    d = result.deliver
    if d is None:
        raise PduError(result.reason or "not an SMS-DELIVER")
    if d.notes and not lenient:
        raise PduError(d.notes[0])
    return d


def decode_status_report(pdu_hex: str, tpdu_length: int | None = None) -> StatusReportPdu:
    _smsc, t = _split_sca(_hex(pdu_hex), tpdu_length)
    return _status_tpdu(t)


def join_parts(parts: list[DeliverPdu]) -> str:
    """Text of a concatenated message from its parts in order (UCS-2 joined at the byte level)."""
    if parts and all(p.raw_ucs2 is not None for p in parts):
        return b"".join(p.raw_ucs2 or b"" for p in parts).decode("utf-16-be", "replace")
    return "".join(p.text for p in parts)


# -- the simulator's side: SMS-DELIVER and SMS-STATUS-REPORT encoders ------------------------------


def _encode_sender(sender: str) -> bytes:
    if sender.startswith("+") and sender[1:].isdigit():
        return encode_address(sender)
    if sender.isdigit():
        return encode_address(sender)
    septets = gsm7_encode(sender)
    packed = pack_septets(septets)
    return bytes([(len(septets) * 7 + 3) // 4, 0xD0]) + packed


def encode_deliver(
    sender: str,
    text: str,
    when: datetime | None = None,
    *,
    reference: int = 0,
    wide_ref: bool = False,
    smsc: str | None = "+15550000000",
) -> list[str]:
    """SMS-DELIVER PDUs (with SMSC prefix) as a network would hand `text` from `sender` to a modem."""
    when = when or datetime.now(UTC)
    encoding, pieces = split_text(text, wide_ref=wide_ref)
    total = len(pieces)
    out: list[str] = []
    for index, piece in enumerate(pieces, 1):
        first = 0x04  # SMS-DELIVER, no more messages to send
        udh = b""
        if total > 1:
            first |= 0x40
            if wide_ref:
                udh = bytes([0x06, 0x08, 0x04, (reference >> 8) & 0xFF, reference & 0xFF, total, index])
            else:
                udh = bytes([0x05, 0x00, 0x03, reference & 0xFF, total, index])
        if encoding is Encoding.GSM7:
            septets = gsm7_encode(piece)
            header_septets = (len(udh) * 8 + 6) // 7
            fill = header_septets * 7 - len(udh) * 8
            ud = udh + pack_septets(septets, fill) if udh else pack_septets(septets)
            udl, dcs = header_septets + len(septets), 0x00
        else:
            ud = udh + piece.encode("utf-16-be")
            udl, dcs = len(ud), 0x08
        tpdu = bytes([first]) + _encode_sender(sender) + bytes([0x00, dcs]) + encode_timestamp(when) + bytes([udl]) + ud
        out.append((encode_smsc(smsc) + tpdu).hex().upper())
    return out


def encode_status_report(reference: int, recipient: str, status: int, when: datetime, smsc: str | None = None) -> str:
    ts = encode_timestamp(when)
    tpdu = bytes([0x06, reference & 0xFF]) + encode_address(recipient) + ts + ts + bytes([status])
    return (encode_smsc(smsc) + tpdu).hex().upper()


@dataclass(frozen=True, slots=True)
class SubmitDecoded:
    recipient: str
    text: str
    concat: Concat | None
    status_report: bool


def decode_submit(pdu_hex: str, tpdu_length: int | None = None) -> SubmitDecoded:
    """Decode an SMS-SUBMIT (the simulator's view of what the modem was asked to send)."""
    try:
        data = bytes.fromhex(pdu_hex.strip())
    except ValueError as exc:
        raise PduError("not hexadecimal") from exc
    _smsc, t = _split_sca(data, tpdu_length)
    if len(t) < 4 or t[0] & 0x03 != 0x01:
        raise PduError("not an SMS-SUBMIT")
    first = t[0]
    recipient, pos = decode_address(t, 2)
    vpf = (first >> 3) & 0x03
    pos += 2  # PID, DCS
    if pos > len(t):
        raise PduError("SMS-SUBMIT too short")
    dcs = t[pos - 1]
    pos += {0: 0, 2: 1}.get(vpf, 7)
    if pos >= len(t):
        raise PduError("SMS-SUBMIT too short")
    udl, ud = t[pos], t[pos + 1 :]
    concat, udh_len = None, 0
    if first & 0x40:
        if not ud or ud[0] + 1 > len(ud):
            raise PduError("user data header runs past the end")
        udh_len = ud[0] + 1
        concat, _port = _parse_udh(ud[1:udh_len])
    if _dcs_info(dcs)[0] is Encoding.GSM7:
        if (udl * 7 + 7) // 8 > len(ud):
            raise PduError("user data shorter than its length says")
        text = gsm7_decode(unpack_septets(ud, udl)[(udh_len * 8 + 6) // 7 :])
    else:
        if udl > len(ud):
            raise PduError("user data shorter than its length says")
        text = ud[udh_len:udl].decode("utf-16-be", "surrogatepass")
    return SubmitDecoded(recipient, text, concat, bool(first & 0x20))
