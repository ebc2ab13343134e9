"""PDU codec throughput: Huddle's encoder and decoder, and smspdudecoder's decoder as the baseline.

    python -m bench.sms_pdu [--seconds 1.0]

Decoding runs over the same SMS-DELIVER PDUs (short 7-bit, extension characters, UCS-2 with
emoji, concatenated parts); the ratio is Huddle's rate over smspdudecoder's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from smspdudecoder.easy import read_incoming_sms

from channels.sms import pdu

TEXTS = [
    "Your order is ready for pickup.",
    "Deal: 20% off {pre-rolls} today only [ends 9pm] €",
    "Thanks! 🎉 You earned 120 points 👍🏽",
    "long text " * 40,
    "Привет 😀 " * 30,
]


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Items per second, measured for at least `seconds`."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    pdus = [h for i, t in enumerate(TEXTS) for h in pdu.encode_deliver("+15551234567", t, reference=i)]
    submits = [(t, "+15551234567") for t in TEXTS]

    def encode() -> int:
        n = 0
        for text, number in submits:
            n += len(pdu.encode_submit(number, text, reference=7))
        return n

    def decode() -> int:
        for h in pdus:
            pdu.decode_deliver(h)
        return len(pdus)

    def baseline() -> int:
        for h in pdus:
            read_incoming_sms(h)
        return len(pdus)

    enc = rate(encode, args.seconds)
    dec = rate(decode, args.seconds)
    base = rate(baseline, args.seconds)
    print(f"{'measure':<44}{'parts/s':>12}")
    print(f"{'encode SMS-SUBMIT (Huddle)':<44}{enc:>12,.0f}")
    print(f"{'decode SMS-DELIVER (Huddle)':<44}{dec:>12,.0f}")
    print(f"{'decode SMS-DELIVER (smspdudecoder, baseline)':<44}{base:>12,.0f}")
    print(f"{'decode ratio Huddle / baseline':<44}{dec / base:>11.1f}x")
    print(f"({len(pdus)} PDUs from {len(TEXTS)} texts; a modem sends 6-20 parts a minute)")


if __name__ == "__main__":
    main()
