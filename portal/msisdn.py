"""Normalization of the mobile numbers people type into the portal."""

from __future__ import annotations

import re

_E164_DIGITS = re.compile(r"[1-9][0-9]{7,14}")
_BLANKS = re.compile(r"\s+")


def normalize_msisdn(text: str) -> str | None:
    """E.164 digits without '+', or None when ``text`` is not a well-formed number.

    Blanks, a leading '+' or a leading '00' are removed (as the pipeline does for every
    input); what is left must be 8 to 15 digits starting with 1-9. National formats
    ("0170 ...") are refused rather than guessed, so no number is stored wrongly.
    """
    s = _BLANKS.sub("", text or "")
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    return s if _E164_DIGITS.fullmatch(s) else None


def display_msisdn(msisdn: str) -> str:
    """The number as people read it back: '+' and the digits (country codes vary in length,
    so no grouping is guessed)."""
    return "+" + msisdn
