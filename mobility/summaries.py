"""Run summaries and the gates on them: plain functions of the counts a job collected.

Kept out of the jobs so that the arithmetic (and the rules that stop a run) have unit
tests of their own, and the jobs read as wiring.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from contract.errors import ValidationError
from contract.vocabulary import DISPOSITIONS, REASONS


def stage1_summary(counts: Mapping[tuple[str, str | None], int]) -> dict[str, Any]:
    """Stage 1's summary from the row count per ``(disposition, reason)``.

    ``rows_in = excluded_opted_out + quarantined_total + excluded_minor + excluded_business + rows_out``
    holds by construction: every event has exactly one disposition.
    """
    unknown = {d for d, _ in counts} - set(DISPOSITIONS)
    if unknown:
        raise ValueError(f"unknown dispositions {sorted(unknown)}")
    by_disp = {d: sum(n for (disp, _), n in counts.items() if disp == d) for d in DISPOSITIONS}
    order = {r: i for i, r in enumerate(REASONS)}
    quarantined = {reason: n for (disp, reason), n in sorted(counts.items(), key=lambda kv: order.get(kv[0][1], 99))
                   if disp == "quarantine"}
    return {
        "rows_in": sum(counts.values()),
        "excluded_opted_out": by_disp["opted_out"],
        "quarantined": quarantined,
        "quarantined_total": by_disp["quarantine"],
        "excluded_minor": by_disp["minor"],
        "excluded_business": by_disp["business"],
        "rows_out": by_disp["kept"],
    }


def check_stage1(summary: Mapping[str, Any], *, date: dt.date, raw_rows: int, max_quarantine_share: float) -> None:
    """Stop stage 1 before any write: an empty partition, too many bad rows, or rows lost on the way."""
    rows_in = summary["rows_in"]
    if rows_in == 0:
        raise ValidationError(f"network_events partition {date} is empty")
    share = summary["quarantined_total"] / rows_in
    if share > max_quarantine_share:
        raise ValidationError(
            f"network_events {date}: {share:.2%} of rows are unprocessable, more than "
            f"quality.max_quarantine_share={max_quarantine_share:.2%}; nothing was written"
        )
    if rows_in != raw_rows:
        raise ValidationError(f"network_events {date}: stage 1 tagged {rows_in} rows but the partition has "
                              f"{raw_rows}; nothing was written")


def aggregate_summary(counts: Mapping[str, int], *, expansion: str) -> dict[str, Any]:
    """Stage 3's summary from the group counts (``transforms.disclosure.release_counts``)."""
    c = counts
    return {
        "footfall_groups": c["footfall_groups"],
        "footfall_released": c["footfall_released"],
        "footfall_suppressed_below_k": c["footfall_primary"],
        "footfall_suppressed_secondary": c["footfall_secondary"],
        "footfall_released_without_secondary": c["footfall_released"] + c["footfall_secondary"],
        "presence_groups": c["presence_groups"],
        "presence_released": c["presence_groups"] - c["presence_below_k"],
        "presence_suppressed_below_k": c["presence_below_k"],
        "presence_expansion": expansion,
        "od_flows_groups": c["od_groups"],
        "od_flows_released": c["od_groups"] - c["od_below_k"],
        "od_flows_suppressed_below_k": c["od_below_k"],
    }
