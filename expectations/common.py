"""Shared pieces of the table suites: parameters, row checks as Spark columns, expectation builders.

Great Expectations on Spark runs separate Spark jobs per metric (FIELD_NOTES), so a
suite never looks at a big table row by row. Every suite has two parts:

* **schema** expectations (``meta.on == "schema"``), checked on ``df.limit(0)``: GE
  answers them from the frame's schema without running a Spark job;
* **profile** expectations, checked on the table's *profile*: a frame of a few rows
  that one Spark aggregation computes from the data (counts of bad rows, shares,
  minima, the distinct values of categorical columns). Aggregate expectations
  (``ExpectColumnMin/MaxToBeBetween``, ``ExpectColumnDistinctValuesToBeInSet``) on it
  cost GE a handful of Spark jobs over a tiny cached frame per table.

Each ``expectations/<table>.py`` defines ``COLUMNS`` (the contract), ``profile(df, p)``
and ``build_suite(p)``; ``mobility.quality`` runs them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.columns import content_digest, count_if, is_h3_at, is_hex64, is_window_aligned
from contract.vocabulary import GENDERS, IDENTIFIER_NAMES, age_bands
from mobility.config import Config

# Any value that *contains* something shaped like an MSISDN, IMSI (15 digits) or IMEI
# (14-16 digits): a run of 8-16 decimal digits, optionally '+'-prefixed, that is not
# part of a longer alphanumeric token (a digit run inside a hex hash or an H3 cell is
# next to a hex letter) and not the fraction of a decimal number.
IDENTIFIER_SHAPED = r"(?<![0-9A-Za-z._-])\+?[0-9]{8,16}(?![0-9A-Za-z])"
_SHAPED = re.compile(IDENTIFIER_SHAPED)  # Python's re reads this pattern as Java's regex does (Spark's rlike)
MAX_AGE_YEARS = 120


@dataclass(frozen=True)
class SuiteParams:
    """What the suites need from the run: the date, the validated config (no secrets), and what to reconcile.

    The thresholds are read from ``cfg`` (one source of truth), through the properties below.
    """

    date: dt.date
    cfg: Config
    as_of: dt.datetime | None = None
    # Rows the run summary says the job wrote (reconciliation); None = not checked.
    expected_rows: int | None = None

    def replace(self, **changes) -> SuiteParams:
        return dataclasses.replace(self, **changes)

    @property
    def k_min(self) -> int:
        return self.cfg.privacy.k_min

    @property
    def h3_resolution(self) -> int:
        return self.cfg.generalization.h3_resolution

    @property
    def od_h3_resolution(self) -> int:
        return self.cfg.generalization.od_h3_resolution

    @property
    def window_minutes(self) -> int:
        return self.cfg.generalization.window_minutes

    @property
    def max_quarantine_share(self) -> float:
        return self.cfg.quality.max_quarantine_share

    @property
    def min_known_cell_share(self) -> float:
        return self.cfg.quality.min_known_cell_share

    @property
    def min_wellformed_msisdn_share(self) -> float:
        return self.cfg.quality.min_wellformed_msisdn_share

    @property
    def age_bands(self) -> tuple[str, ...]:
        """The labels stage 1 produces for the configured edges, plus ``unknown``."""
        return age_bands(self.cfg.generalization.age_band_edges)


# ---------------------------------------------------------------- row checks as columns




def share_if(cond: Column) -> Column:
    """Share of rows where ``cond`` is true; 1.0 for an empty frame (nothing is bad)."""
    return F.coalesce(F.avg(F.when(cond, 1.0).otherwise(0.0)), F.lit(1.0))


def any_null(*cols: str) -> Column:
    """True when any of ``cols`` is null."""
    cond = F.lit(False)
    for c in cols:
        cond = cond | F.col(c).isNull()
    return cond


def identifier_shaped(*cols: str, hex_ids: Iterable[str] = (),
                      vocabularies: dict[str, Iterable[str]] | None = None) -> Column:
    """True when any string column holds something shaped like an MSISDN/IMSI/IMEI.

    The costlier search is skipped for values that provably cannot match: a well-formed
    64-hex pseudonym in a ``hex_ids`` column (every digit run in it touches a hex letter
    or another digit), and a term of the column's closed vocabulary (``vocabularies``,
    e.g. the age bands, genders or event types) that does not match itself. Any other
    value, and any term that would match, is searched. The skip changes no answer, only
    how many rows the regular expression reads (about 20 % of a 4 M-event profile).
    """
    vocabularies = vocabularies or {}
    cond = F.lit(False)
    for c in cols:
        shaped = F.coalesce(F.col(c).rlike(IDENTIFIER_SHAPED), F.lit(False))
        if c in hex_ids:
            shaped = F.when(is_hex64(c), F.lit(False)).otherwise(shaped)
        terms = sorted({v for v in vocabularies.get(c, ()) if isinstance(v, str) and not _SHAPED.search(v)})
        if terms:
            shaped = F.when(F.col(c).isin(*terms), F.lit(False)).otherwise(shaped)
        cond = cond | shaped
    return cond


def on_date(col: str, date: dt.date) -> Column:
    """The timestamp falls on ``date`` (UTC session)."""
    return F.coalesce(F.to_date(F.col(col)) == F.lit(date), F.lit(False))


# ---------------------------------------------------------------- expectation builders

SPARK_TYPES = {"string": "StringType", "long": "LongType", "int": "IntegerType", "double": "DoubleType",
               "date": "DateType", "timestamp": "TimestampType", "boolean": "BooleanType"}


def schema_expectations(columns: dict[str, str]) -> list[gxe.Expectation]:
    """Exactly these columns (so no identifier column can slip in), each of its type."""
    meta = {"on": "schema"}
    out: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(columns), exact_match=True,
                                         meta={**meta, "check": "exactly the contracted columns"})
    ]
    for name, kind in columns.items():
        out.append(gxe.ExpectColumnValuesToBeOfType(column=name, type_=SPARK_TYPES[kind],
                                                    meta={**meta, "check": f"{name} is {kind}"}))
    return out


def no_identifier_columns(columns: Iterable[str]) -> None:
    """Fail at import time if a contract itself names an identifier column."""
    bad = [c for c in columns if any(n in c.lower() for n in IDENTIFIER_NAMES)]
    if bad:
        raise ValueError(f"a released contract may not name identifier columns: {bad}")


def at_least(column: str, value: float, check: str) -> gxe.Expectation:
    """Every profile row's ``column`` is at least ``value`` (for shares and minima)."""
    return gxe.ExpectColumnMinToBeBetween(column=column, min_value=value, meta={"on": "profile", "check": check})


def at_most(column: str, value: float, check: str) -> gxe.Expectation:
    """Every profile row's ``column`` is at most ``value`` (for counts of bad rows)."""
    return gxe.ExpectColumnMaxToBeBetween(column=column, max_value=value, meta={"on": "profile", "check": check})


def none_bad(column: str, check: str) -> gxe.Expectation:
    """No bad row: the count in ``column`` is 0 in every profile row."""
    return at_most(column, 0, check)


def exactly(column: str, value: int, check: str) -> gxe.Expectation:
    """The profile's total ``column`` equals ``value`` (reconciliation with the run summary)."""
    return gxe.ExpectColumnSumToBeBetween(column=column, min_value=value, max_value=value,
                                          meta={"on": "profile", "check": check})


def not_in_set(col: str, values: Iterable[object], *, allow_null: bool = False) -> Column:
    """Profile column ``unexpected_<col>``: rows whose value is not one of ``values``.

    A count instead of GE's ``ExpectColumnDistinctValuesToBeInSet``: that expectation
    runs four Spark jobs of its own, while min/max/sum expectations on one profile
    share a single job.
    """
    outside = ~F.coalesce(F.col(col).isin(*values), F.lit(allow_null))
    return count_if(outside).alias(f"unexpected_{col}")


def in_set(col: str, values: Iterable[object], check: str) -> gxe.Expectation:
    """No row outside the set (pairs with :func:`not_in_set`); the set is kept in the meta for the report."""
    e = none_bad(f"unexpected_{col}", check)
    e.meta["value_set"] = [str(v) for v in values]
    return e


@functools.cache
def ge_context():
    """The process's one ephemeral GE context: no files, no stores, no progress bars, no usage events.

    Analytics are switched off in the context's own config (a restricted zone sends no
    usage events), not through a process-wide environment variable.
    """
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(analytics_enabled=False, store_backend_defaults=InMemoryStoreBackendDefaults(),
                               progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(project_config=config, mode="ephemeral")


def make_suite(name: str, expectations: Iterable[gxe.Expectation]) -> gx.ExpectationSuite:
    """An unsaved suite (the ephemeral context never stores it; the code is the source of truth)."""
    ge_context()
    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation(e)
    return suite


# ---------------------------------------------------------------- output tables


def output_checks(df: DataFrame, p: SuiteParams, *, keys: Iterable[str], hex_ids: Iterable[str] = (),
                  h3: dict[str, int] | None = None, window: str | None = None,
                  demographics: bool = True, vocabularies: dict[str, Iterable[str]] | None = None) -> list[Column]:
    """Aggregates every output profile shares: rows, wrong date, null keys, identifier-shaped
    values in any string column, malformed pseudonyms, H3 cells, windows.

    ``vocabularies`` names columns with a closed set of values (the age bands and genders
    are added when ``demographics``): :func:`identifier_shaped` skips those values.
    """
    strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
    hex_ids = tuple(hex_ids)
    vocabularies = {**({"age_band": p.age_bands, "gender": GENDERS} if demographics else {}), **(vocabularies or {})}
    aggs = [
        F.count(F.lit(1)).alias("rows"),
        count_if(F.col("date") != F.lit(p.date)).alias("rows_off_date"),
        count_if(any_null(*keys)).alias("null_key_rows"),
        count_if(identifier_shaped(*strings, hex_ids=hex_ids, vocabularies=vocabularies))
        .alias("identifier_shaped_values"),
    ]
    for c in hex_ids:
        aggs.append(count_if(~is_hex64(c)).alias(f"malformed_{c}"))
    for c, res in (h3 or {}).items():
        aggs.append(count_if(~is_h3_at(F.col(c), res)).alias(f"invalid_{c}"))
    if window:
        aggs.append(count_if(~is_window_aligned(window, p.window_minutes) | ~on_date(window, p.date))
                    .alias(f"misaligned_{window}"))
    if demographics:
        aggs += [not_in_set("age_band", p.age_bands), not_in_set("gender", GENDERS)]
    return aggs


def output_expectations(p: SuiteParams, *, hex_ids: Iterable[str] = (), h3: dict[str, int] | None = None,
                        window: str | None = None, demographics: bool = True) -> list[gxe.Expectation]:
    """The expectations matching :func:`output_checks` (plus age band and gender sets)."""
    out = [
        none_bad("rows_off_date", f"every row is dated {p.date.isoformat()}"),
        none_bad("null_key_rows", "no nulls in key columns"),
        none_bad("identifier_shaped_values", "no value shaped like an MSISDN/IMSI/IMEI in any string column"),
    ]
    for c in hex_ids:
        out.append(none_bad(f"malformed_{c}", f"{c} is 64 lowercase hex characters"))
    for c, res in (h3 or {}).items():
        out.append(none_bad(f"invalid_{c}", f"{c} is a valid H3 cell at resolution {res}"))
    if window:
        out.append(none_bad(f"misaligned_{window}",
                            f"{window} is aligned to {p.window_minutes}-minute windows on the date"))
    if demographics:
        out.append(in_set("age_band", p.age_bands, "age_band is one of the configured bands or unknown"))
        out.append(in_set("gender", GENDERS, "gender is female, male, diverse or unknown"))
    if p.expected_rows is not None:
        out.append(exactly("rows", p.expected_rows, "row count reconciles with the run summary"))
    else:  # still observed: the write's Delta commit must hold exactly this many rows
        out.append(at_least("rows", 0, "rows audited (reconciled with the Delta commit that publishes them)"))
    return out


# Profile column of a release table: its content digest (``contract.columns.content_digest``), which
# the publisher records in the release ledger. Not a check: computed in the profile's aggregation so
# that the ledger's digest costs no query of its own.
DIGEST = "content_digest"


def digest_check(df: DataFrame) -> Column:
    """The :data:`DIGEST` profile column of ``df`` (the frame the publisher writes)."""
    return content_digest(df.columns).alias(DIGEST)


def release_checks(p: SuiteParams, *, count: str, resolution: int) -> list[Column]:
    """The aggregates every release profile adds: its smallest group and its H3 resolutions."""
    # An empty release has no row below k: its minimum counts as k_min, not as a failing null.
    return [F.coalesce(F.min(count), F.lit(p.k_min)).alias(f"min_{count}"),
            not_in_set("h3_resolution", [resolution])]


def release_expectations(p: SuiteParams, *, count: str, resolution: int,
                         resolution_name: str = "resolution") -> list[gxe.Expectation]:
    """The expectations matching :func:`release_checks`: k-anonymity and the configured resolution."""
    return [at_least(f"min_{count}", p.k_min, f"{count} >= privacy.k_min ({p.k_min}) in every row"),
            in_set("h3_resolution", [resolution], f"h3_resolution is the configured {resolution_name}")]
