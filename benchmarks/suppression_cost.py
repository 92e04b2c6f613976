"""What the footfall suppression rule costs: rows and people released under each rule.

    python -m benchmarks.suppression_cost --conf conf/local.yaml --date 2026-10-05

Reads the date's ``curated/anonymized_events`` (as published, through the ledger),
counts the footfall groups once in Spark, and applies to each cell-window, in plain
Python on the driver (an analysis tool, not the pipeline): primary suppression only
(unsafe, for reference), the earlier "smallest released sibling first" rule (unsafe
against an attacker who knows it), and the current ``remainder-guard-v1`` rule
(``transforms.disclosure.released_breakdown``). The numbers are for docs/privacy.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import defaultdict

from contract.vocabulary import GENDERS, age_bands
from mobility.config import load_config
from mobility.ledger import read_pinned
from mobility.spark import build_session
from transforms.disclosure import released_breakdown
from transforms.stage3 import count_visitors


def smallest_first(sizes: list[int], k: int) -> list[int]:
    """The earlier rule, kept here only to measure what the change costs."""
    if sum(sizes) < k:
        return []
    released = sorted(s for s in sizes if s >= k)
    remainder = sum(sizes) - sum(released)
    while 0 < remainder < k:
        remainder += released.pop(0)
    return released


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.suppression_cost")
    p.add_argument("--conf", required=True)
    p.add_argument("--date", required=True, type=dt.date.fromisoformat)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    cfg = load_config(args.conf, args.set)
    k = cfg.privacy.k_min
    labels = len(age_bands(cfg.generalization.age_band_edges)) * len(GENDERS)
    spark = build_session("suppression-cost", cfg.spark)
    events = read_pinned(spark, cfg.lake, "anonymized_events", args.date, what="curated/anonymized_events")
    cells: dict[tuple, list[int]] = defaultdict(list)
    for r in count_visitors(events).select("window_start", "h3_cell", "visitors").toLocalIterator():
        cells[(r["window_start"], r["h3_cell"])].append(int(r["visitors"]))
    rules = {
        "primary only (unsafe)": lambda s: [v for v in s if v >= k] if sum(s) >= k else [],
        "smallest sibling first (earlier, invertible)": lambda s: smallest_first(s, k),
        "remainder-guard-v1 (current)": lambda s: (released_breakdown(s, k, labels) or []) if sum(s) >= k else [],
    }
    groups = sum(len(v) for v in cells.values())
    people = sum(sum(v) for v in cells.values())
    print(f"{args.date}: {len(cells):,} cell-windows, {groups:,} footfall groups, {people:,} people-windows, "
          f"k_min={k}, {labels} labels")
    print(f"{'rule':<46} {'rows':>8} {'people-windows':>15} {'share':>7}")
    for name, rule in rules.items():
        released = [rule(sizes) for sizes in cells.values()]
        rows, kept = sum(len(r) for r in released), sum(sum(r) for r in released)
        print(f"{name:<46} {rows:>8,} {kept:>15,} {kept / people:>7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
