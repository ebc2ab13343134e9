"""Opt-out recall and false positives: `bot.optout` against the old exact-word rule, on a real-world corpus.

    python -m bench.optout

The corpus is `tests/data/optout_corpus.csv` (opt-out replies from the FCC's rule, carriers' and
providers' docs, shops' and campaigns' lists of replies they received, SMS projects' issue reports
and a court record; and ordinary texts that merely contain "stop"). The baseline is the rule
`bot/dispatcher.py` applied before issue 17: the whole text, stripped and upper-cased, is one of
STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE. Also prints the time per message
(2 shared cores: noisy).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

from bot import optout

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "optout_corpus.csv"
OLD_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})


def old_rule(text: str) -> bool:
    return text.strip().upper() in OLD_WORDS


def load() -> list[tuple[bool, str]]:
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    rows = list(csv.reader(lines))[1:]
    return [(label == "optout", text) for label, text, _source in rows]


def measure(rule: Callable[[str], bool], rows: list[tuple[bool, str]]) -> tuple[float, float, float, list[str]]:
    """(recall, false-positive rate, microseconds per message, missed opt-outs)."""
    positives = [t for is_out, t in rows if is_out]
    negatives = [t for is_out, t in rows if not is_out]
    start = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        found = [rule(t) for t in positives]
        wrong = [rule(t) for t in negatives]
    per_message = (time.perf_counter() - start) / (rounds * len(rows)) * 1e6
    missed = [t for t, hit in zip(positives, found, strict=True) if not hit]
    return sum(found) / len(positives), sum(wrong) / len(negatives), per_message, missed


def main() -> None:
    rows = load()
    n_out = sum(1 for is_out, _ in rows if is_out)
    print(f"corpus: {n_out} opt-out phrasings, {len(rows) - n_out} other messages "
          f"({sum(1 for o, t in rows if not o and 'stop' in t.lower())} of them contain 'stop')")
    print(f"{'matcher':<28}{'recall':>9}{'false pos.':>12}{'µs/msg':>9}")
    results = {}
    for name, rule in (("old exact word (baseline)", old_rule), ("bot.optout", optout.is_opt_out)):
        recall, fp, us, missed = measure(rule, rows)
        results[name] = (recall, fp, missed)
        print(f"{name:<28}{recall:>8.1%}{fp:>12.1%}{us:>9.1f}")
    base, new = results["old exact word (baseline)"], results["bot.optout"]
    print(f"\nopt-outs the baseline misses: {len(base[2])} of {n_out} "
          f"(recall ×{new[0] / base[0]:.2f}); bot.optout misses {len(new[2])}")
    wrong = [t for is_out, t in rows if not is_out and optout.is_opt_out(t)]
    if wrong:
        print("bot.optout false positives: " + "; ".join(repr(t) for t in wrong))
    print("timings are on 2 shared cores: noisy")


if __name__ == "__main__":
    main()
