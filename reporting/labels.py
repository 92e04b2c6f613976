"""Shared wording and orderings of the buyers' reports (what a number means, in words)."""

from __future__ import annotations

import re
from typing import Any

GENDER_ORDER = ("female", "male", "diverse", "unknown")


def age_band_key(band: str) -> tuple[int, str]:
    """Order age bands by their first year ("18-24" < "65+" < "unknown")."""
    m = re.match(r"^(\d+)", band or "")
    return (int(m.group(1)), band) if m else (10_000, band or "")


def gender_key(gender: str) -> tuple[int, str]:
    return (GENDER_ORDER.index(gender), gender) if gender in GENDER_ORDER else (len(GENDER_ORDER), gender or "")


def release_policy(privacy: Any, root: Any = None) -> dict[str, Any]:
    """What protects the released numbers, for the page header and chart captions.

    ``privacy`` is ``cfg.privacy``; ``root`` the whole config (a ``dp`` section may live
    there or under ``privacy``). Read with ``getattr`` so that it works whether or not the
    configuration knows a release mode yet.
    """
    mode = getattr(privacy, "mode", "k_anonymity") or "k_anonymity"
    k_min = getattr(privacy, "k_min", None)
    if mode == "differential_privacy":
        dp = getattr(root, "dp", None) or getattr(privacy, "dp", None)
        epsilon = getattr(dp, "epsilon", None) if dp is not None else getattr(privacy, "epsilon", None)
        text = (f"differential privacy, \u03b5 = {epsilon}: noise was added to every released number; "
                "groups that were not released are absent, not zero")
        return {"mode": mode, "epsilon": epsilon, "k_min": None, "text": text}
    text = (f"k-anonymity, k_min = {k_min}: every released group stands for at least {k_min} people; "
            f"groups of fewer people were suppressed and are absent, not zero")
    return {"mode": "k_anonymity", "k_min": k_min, "epsilon": None, "text": text}


SUM_MEANING = (
    "Each number is a sum of released footfall groups (distinct people per H3 cell, time "
    "window, age band and gender). A person seen in two cells in one window counts twice; "
    "suppressed groups are missing, not zero. It is not a count of unique visitors."
)
