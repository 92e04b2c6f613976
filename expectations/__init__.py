"""Great Expectations suites, one module per table, as code (see ``expectations/common.py``)."""

from __future__ import annotations

import importlib
from types import ModuleType

INPUT_TABLES = ("network_events", "subscribers", "privacy_preferences", "cells")
OUTPUT_TABLES = ("pseudonymized_events", "quarantine", "anonymized_events", "anonymized_trips",
                 "footfall", "presence", "od_flows", "opt_outs", "erasure_log")
OUTPUT_TABLES += ("offer_audience", "offer_report")  # jobs.offers


def suite_module(table: str) -> ModuleType:
    """The module holding ``COLUMNS``, ``profile`` and ``build_suite`` of ``table``."""
    if table not in INPUT_TABLES + OUTPUT_TABLES:
        raise KeyError(f"no data-quality suite for table '{table}'")
    return importlib.import_module(f"expectations.{table}")
