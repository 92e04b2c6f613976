"""The words of the contract (DESIGN.md): written once, used by transforms and suites alike."""

from __future__ import annotations

import itertools

# E.164 digits without '+', 8-15 digits: a canonical MSISDN.
MSISDN_PATTERN = r"^[1-9][0-9]{7,14}$"
MSISDN_DIGITS = (8, 15)
# The blanks removed from a number before it is read: every character Python's ``str.isspace``
# calls whitespace (tab, line breaks, space, no-break and narrow no-break space, the other
# Unicode spaces), the set the portal's ``\s`` strips from what people type.
BLANKS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
          "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
IDENTIFIER_COLUMNS = ("msisdn", "imsi", "imei")
# Words that may never name a column of a curated or released table.
IDENTIFIER_NAMES = ("msisdn", "imsi", "imei", "phone", "subscriber")

EVENT_TYPES = ("voice", "sms", "data", "handover", "location_update")
CUSTOMER_TYPES = ("consumer", "business")

# CRM gender codes -> released labels; anything else is "unknown".
GENDER_CODES = {"F": "female", "M": "male", "D": "diverse"}
UNKNOWN = "unknown"
GENDERS = (*GENDER_CODES.values(), UNKNOWN)

# Quarantine reasons of network events, in the order they are checked (the first that applies wins).
REASONS = (
    "missing_msisdn",
    "malformed_msisdn",
    "unknown_event_type",
    "missing_event_ts",
    "event_ts_outside_date",
    "unknown_cell",
    "invalid_position",
)
QUARANTINE_SOURCES = ("network_events",)

# Each event's one disposition in stage 1, in the order they are decided: consent first,
# then the populations the law excludes, and only then data quality (an opted-out or
# excluded person's bad row never reaches the quarantine).
DISPOSITIONS = ("opted_out", "minor", "business", "quarantine", "kept")

# Keyed-hash domains: the quarantine's identifiers are HMAC(network key, domain + value),
# so they never equal (or join to) a curated ``pseudo_id`` = HMAC(network key, msisdn).
QUARANTINE_ID_DOMAIN = "quarantine/"
# Precision the quarantine keeps of a bad row: enough to find and fix the feed, not to follow a person.
QUARANTINE_TIME_UNIT = "hour"        # event_ts truncated to the hour
QUARANTINE_COORD_DECIMALS = 2        # about 1.1 km in latitude

# Footfall suppression marks.
PRIMARY, SECONDARY = "primary", "secondary"

# The released tables: the key of one row, and its value column.
RELEASE_KEYS = {
    "footfall": ("date", "window_start", "h3_cell", "age_band", "gender"),
    "presence": ("date", "window_start", "h3_cell"),
    "od_flows": ("date", "window_start", "origin_h3", "destination_h3", "age_band", "gender"),
    "offer_report": ("date", "campaign_id", "window_start", "age_band", "gender"),
}
RELEASE_VALUES = {"footfall": "visitors", "presence": "visitors", "od_flows": "trips", "offer_report": "notified"}

# The differential-privacy release mode's mechanisms (transforms/dp.py), as the ledger records them.
DP_MECHANISM = "opendp discrete_laplace (footfall, presence over public keys); laplace_threshold (od_flows)"
DP_SUPPRESSION = "dp-post-processing: noisy counts below k_min not released"

# Policy floors (DESIGN.md, wave two): looser values are a config error.
MIN_K = 10
MAX_H3_RESOLUTION = 9
MIN_WINDOW_MINUTES = 15

HEX64 = r"^[0-9a-f]{64}$"


def age_band_labels(edges: tuple[int, ...]) -> tuple[str, ...]:
    """The labels of the configured bands, in order: ``18-24``, ..., ``65+``."""
    return (*(f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)), f"{edges[-1]}+")


def age_bands(edges: tuple[int, ...]) -> tuple[str, ...]:
    """Every label stage 1 can produce: the bands and ``unknown``."""
    return (*age_band_labels(edges), UNKNOWN)

# Tables that hold rows of a person and so are erased by ``jobs.erase``: the curated ones
# (found by keyed pseudonyms) and the offers' audience in the network zone (by number);
# the erasure log names them in ``table_name``.
ERASED_TABLES = ("pseudonymized_events", "opt_outs", "anonymized_events", "anonymized_trips", "quarantine",
                 "offer_audience")
