"""Secondary suppression and the privacy audit: no small group visible or derivable by subtraction."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import secrets as pysecrets

import h3
import pytest
from pyspark.sql import functions as F

from contract.errors import ValidationError
from contract.schemas import PRIVACY_PREFERENCES
from mobility.config import load_config
from mobility.io import read_date, table_path, write_date
from mobility.publish import Publication
from mobility.runner import Context
from mobility.secrets import Keys, Secret
from tests.conftest import record_published, write_conf
from transforms.disclosure import FINDINGS_SCHEMA, audit_release, mark_suppression, released_breakdown
from transforms.stage3 import to_footfall

D = dt.date(2026, 10, 5)
W8 = dt.datetime(2026, 10, 5, 8, 0)
K = 15
GROUPS = "date date, window_start timestamp, h3_cell string, age_band string, gender string, visitors long"
PRESENCE = "date date, window_start timestamp, h3_cell string, visitors long"
AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown")
GENDERS = ("female", "male", "diverse", "unknown")


def frames(spark, cells: dict[str, list[int]]):
    """Footfall groups and presence for cell-windows given as lists of group sizes (presence = their sum)."""
    groups, presence = [], []
    for cell, sizes in cells.items():
        combos = [(a, g) for a in AGES for g in GENDERS]
        for (age, gender), n in zip(combos, sizes, strict=False):
            groups.append((D, W8, cell, age, gender, n))
        presence.append((D, W8, cell, sum(sizes)))
    return spark.createDataFrame(groups, GROUPS), spark.createDataFrame(presence, PRESENCE)


LABELS = len(AGES) * len(GENDERS)


def release(spark, cells: dict[str, list[int]], k: int = K):
    """Run the rule; return (footfall, presence, statuses as {cell: sorted [(visitors, status)]})."""
    groups, presence_counts = frames(spark, cells)
    marked = mark_suppression(groups, k_min=k, labels=LABELS)
    statuses: dict[str, list] = {}
    for r in marked.collect():
        statuses.setdefault(r["h3_cell"], []).append((r["visitors"], r["suppression"]))
    footfall = to_footfall(marked.filter(F.col("suppression").isNull()), k_min=k, h3_resolution=8)
    presence = presence_counts.filter(F.col("visitors") >= k).withColumn("h3_resolution", F.lit(8))
    return footfall, presence, {c: sorted(v, key=lambda x: (x[0], str(x[1]))) for c, v in statuses.items()}


def remainders(footfall, presence) -> dict[str, int]:
    sums = {r["h3_cell"]: r["s"] for r in footfall.groupBy("h3_cell").agg(F.sum("visitors").alias("s")).collect()}
    return {r["h3_cell"]: r["visitors"] - sums.get(r["h3_cell"], 0) for r in presence.collect()}


def test_a_small_remainder_suppresses_the_whole_breakdown(spark):
    footfall, presence, status = release(spark, {"c": [20, 30, 3], "full": [20, 30], "tiny": [4, 5],
                                                 "enough": [9, 8, 20]})
    # 3 alone would be presence - (20 + 30): the whole breakdown goes, presence stays.
    assert status["c"] == [(3, "primary"), (20, "secondary"), (30, "secondary")]
    assert status["full"] == [(20, None), (30, None)]
    assert status["tiny"] == [(4, "primary"), (5, "primary")]
    # 9 + 8 = 17 >= k people in the missing labels, 27 labels missing: nothing pinned.
    assert status["enough"] == [(8, "primary"), (9, "primary"), (20, None)]
    assert remainders(footfall, presence) == {"c": 53, "full": 0, "enough": 17}
    assert sorted(r["visitors"] for r in footfall.collect()) == [20, 20, 30]
    assert audit_release(footfall, presence, None, K, labels=LABELS).count() == 0


def test_a_remainder_that_pins_every_missing_label_suppresses_the_breakdown(spark):
    # 27 labels of 14 people each (k - 1) and one of 20: the missing 27 x 14 = 378 people
    # could only be split one way, so the breakdown goes.
    pinned = [20] + [K - 1] * (LABELS - 1)
    _, _, status = release(spark, {"p": pinned, "q": [21] + [K - 1] * (LABELS - 2)})
    assert {s for _, s in status["p"]} == {"primary", "secondary"}
    assert [s for v, s in status["q"] if v == 21] == [None]  # one label less: nothing is pinned


# --- the rule against an attacker who knows it: exhaustive over small cell-windows ---------------

def remainder_guard(sizes: tuple[int, ...], k: int) -> tuple:
    """The released footfall rows ``(label, size)`` of one cell-window under the project's rule."""
    if sum(sizes) < k or released_breakdown(list(sizes), k, len(sizes)) is None:
        return ()
    return tuple((g, v) for g, v in enumerate(sizes) if v >= k)


def smallest_first(sizes: tuple[int, ...], k: int) -> tuple:
    """The earlier rule: suppress below k, then the smallest released siblings until R is 0 or >= k."""
    if sum(sizes) < k:
        return ()
    released = sorted((v, g) for g, v in enumerate(sizes) if v >= k)
    remainder = sum(sizes) - sum(v for v, _ in released)
    while 0 < remainder < k:
        remainder += released.pop(0)[0]
    return tuple(sorted((g, v) for v, g in released))


def unprotected(rule, *, groups: int, k: int, x_max: int, y_max: int) -> list[tuple]:
    """Cell-windows whose release pins a suppressed group to fewer than two values below k.

    ``groups`` is the whole label space (a label with 0 people is simply absent). The
    attacker sees presence (if >= k) and the released footfall rows, and knows the
    rule. For every true cell-window ``x`` (0..x_max people per label) and every label
    it does not release, collect the values that label takes in any cell-window ``y``
    (0..y_max per label, wide enough that the domain's edge adds no knowledge) with the
    same release. Fewer than two values below k (0 = "nobody") is a violation.
    """
    def observed(sizes):
        total = sum(sizes)
        return (total if total >= k else None, rule(sizes, k))

    seen: dict[tuple, list[int]] = {}
    for y in itertools.product(range(y_max + 1), repeat=groups):
        masks = seen.setdefault(observed(y), [0] * groups)
        for g, v in enumerate(y):
            if v < k:
                masks[g] |= 1 << v
    bad = []
    for x in itertools.product(range(x_max + 1), repeat=groups):
        key = observed(x)
        shown = {g for g, _ in key[1]}
        for g, v in enumerate(x):
            if v > 0 and g not in shown and bin(seen[key][g]).count("1") < 2:
                bad.append((x, g))
    return bad


@pytest.mark.parametrize(("groups", "k", "x_max", "y_max"), [
    (2, 3, 9, 18), (3, 3, 9, 18), (4, 3, 9, 18), (5, 3, 6, 12), (6, 2, 4, 8), (3, 10, 30, 60), (2, 15, 45, 90),
])
def test_the_rule_leaves_every_suppressed_group_ambiguous(groups, k, x_max, y_max):
    """Every split of up to 6 labels, up to 3k people each: no suppressed label is pinned below k."""
    assert unprotected(remainder_guard, groups=groups, k=k, x_max=x_max, y_max=y_max) == []


def test_the_checker_catches_the_smallest_first_rule():
    """Finding 2 of the release-safety issue: knowing "smallest first" pins suppressed groups."""
    bad = unprotected(smallest_first, groups=3, k=3, x_max=9, y_max=18)
    assert bad  # the checker can fail
    # e.g. sizes (2, 3, 2), k = 3: presence 7, group 1 released with 3, so groups 0 and 2 hold 4.
    # Group 0 cannot be 0 or 1 (group 2 would be >= 3 and released, or force a secondary
    # suppression of the released 3): knowing the rule, group 0 is pinned to 2 below k.
    assert ((2, 3, 2), 0) in bad


def test_spark_rule_equals_the_reference_on_random_cell_windows(spark):
    rng = random.Random(7)
    cells = {f"c{i}": [rng.choice([1, 2, 5, 9, 14, 15, 16, 22, 40]) for _ in range(rng.randint(1, 6))]
             for i in range(60)}
    footfall, presence, _ = release(spark, cells)
    released: dict[str, list[int]] = {}
    for r in footfall.collect():
        released.setdefault(r["h3_cell"], []).append(r["visitors"])
    expected = {c: sorted(released_breakdown(s, K, LABELS)) for c, s in cells.items()
                if sum(s) >= K and released_breakdown(s, K, LABELS)}
    assert {c: sorted(v) for c, v in released.items()} == expected
    assert len(expected) not in (0, len(cells))  # the sample holds both outcomes
    assert all(r == 0 or r >= K for r in remainders(footfall, presence).values())
    assert footfall.filter(F.col("visitors") < K).count() == 0
    assert presence.filter(F.col("visitors") < K).count() == 0
    assert audit_release(footfall, presence, None, K, labels=LABELS).count() == 0


def test_audit_finds_a_crafted_leak_and_nothing_after_suppression(spark):
    groups, presence_counts = frames(spark, {"c": [20, 30, 3]})
    presence = presence_counts.withColumn("h3_resolution", F.lit(8))
    primary_only = to_footfall(groups, k_min=K, h3_resolution=8)
    findings = audit_release(primary_only, presence, None, K)
    assert [(f.name, f.dataType) for f in findings.schema] == [(f.name, f.dataType) for f in FINDINGS_SCHEMA]
    assert [(r["kind"], r["cell"], r["value"]) for r in findings.collect()] == [("derivable_remainder", "c", 3)]
    footfall, presence, _ = release(spark, {"c": [20, 30, 3]})
    assert audit_release(footfall, presence, None, K).count() == 0


def test_audit_finds_small_rows_mixed_resolutions_and_broken_sums(spark):
    footfall = spark.createDataFrame(
        [(D, W8, "a", 8, "25-34", "male", 14), (D, W8, "b", 8, "25-34", "male", 40),
         (D, W8, "c", 7, "65+", "male", 20)],
        "date date, window_start timestamp, h3_cell string, h3_resolution int, age_band string, gender string, "
        "visitors long")
    presence = spark.createDataFrame([(D, W8, "b", 8, 30, 100.0)],
                                     "date date, window_start timestamp, h3_cell string, h3_resolution int, "
                                     "visitors long, population_estimate double")
    od = spark.createDataFrame([(D, W8, "x", "y", 7, "25-34", "male", 3)],
                               "date date, window_start timestamp, origin_h3 string, destination_h3 string, "
                               "h3_resolution int, age_band string, gender string, trips long")
    found = sorted((r["kind"], r["cell"], r["value"]) for r in audit_release(footfall, presence, od, K).collect())
    assert found == [
        ("below_k:footfall", "a", 14),
        ("below_k:od_flows", "x>y", 3),
        ("footfall_without_presence", "a", 14),
        ("footfall_without_presence", "c", 20),
        ("multiple_resolutions:footfall", None, 2),
        ("negative_remainder", "b", -10),
        ("resolution_mismatch", None, 8),
    ]
    with pytest.raises(ValueError):
        audit_release(None, None, None, K)


def audit_reference(footfall: list, presence: list, od: list, k: int, labels: int) -> list[tuple]:
    """The audit's findings in plain Python, straight from its definition (``audit_release``'s docstring).

    Rows are tuples in the contracts' column order (footfall ``date, window_start, h3_cell,
    h3_resolution, age_band, gender, visitors``; presence ``date, window_start, h3_cell,
    h3_resolution, visitors``; od ``date, window_start, origin_h3, destination_h3,
    h3_resolution, age_band, gender, trips``). Null keys never match (SQL joins); a null
    key is still a group of its own (SQL GROUP BY).
    """
    out = []
    below = {"footfall": (footfall, lambda r: r[2], 6), "presence": (presence, lambda r: r[2], 4),
             "od_flows": (od, lambda r: f"{r[2]}>{r[3]}", 7)}
    for name, (rows, cell, value) in below.items():
        out += [(f"below_k:{name}", r[0], r[1], cell(r), r[value]) for r in rows
                if r[value] is not None and r[value] < k]
        by_date: dict = {}
        for r in rows:
            by_date.setdefault(r[0], set()).add(r[4] if name == "od_flows" else r[3])
        out += [(f"multiple_resolutions:{name}", d, None, None, len(res - {None}))
                for d, res in by_date.items() if len(res - {None}) > 1]
    sums: dict = {}
    for r in footfall:
        s = sums.setdefault(r[:3], [None, 0])
        s[0] = r[6] if s[0] is None else s[0] + (r[6] or 0)
        s[1] += 1
    presence_keys = {r[:3] for r in presence if None not in r[:3]}
    for r in presence:
        match = sums.get(r[:3]) if None not in r[:3] else None
        rem = None if r[4] is None else r[4] - ((match[0] if match else None) or 0)
        if rem is None:
            continue
        if 0 < rem < k:
            out.append(("derivable_remainder", *r[:3], rem))
        if rem < 0:
            out.append(("negative_remainder", *r[:3], rem))
        if match and rem > 0 and rem >= (labels - match[1]) * (k - 1):
            out.append(("pinned_remainder", *r[:3], rem))
    out += [("footfall_without_presence", *key, s[0]) for key, s in sums.items()
            if None in key or key not in presence_keys]

    def resolutions(rows, col):  # per date (a null date too): min and max, nulls ignored as in SQL
        seen: dict = {}
        for r in rows:
            seen.setdefault(r[0], []).extend([] if r[col] is None else [r[col]])
        return {d: (min(v), max(v)) if v else (None, None) for d, v in seen.items()}

    res_f, res_p = resolutions(footfall, 3), resolutions(presence, 3)
    for d in res_f.keys() & res_p.keys():
        (rf, xf), (rp, xp) = res_f[d], res_p[d]
        if d is not None and None not in (rf, rp, xf, xp) and (rf != rp or xf != xp):
            out.append(("resolution_mismatch", d, None, None, rp))
    return out


def test_audit_equals_its_definition_on_many_random_small_releases(spark):
    """600 random small releases (one date each, so one Spark query checks them all): every finding the
    audit reports, and no other, is the one its definition gives. Includes duplicate and missing
    cell-windows, two resolutions, null keys and values, footfall without presence and the reverse."""
    rng = random.Random(20261202)
    k, labels = 5, 6
    footfall, presence, od = [], [], []

    def maybe_null(value, p=0.03):
        return None if rng.random() < p else value

    for case in range(600):
        d = D + dt.timedelta(days=case)
        windows = [dt.datetime.combine(d, dt.time(h)) for h in (8, 9)]
        for _ in range(rng.randint(1, 4)):
            key = (maybe_null(d, 0.01), maybe_null(rng.choice(windows)), maybe_null(rng.choice("abc")))
            res = rng.choice([8, 8, 8, 8, 7]) if rng.random() > 0.02 else None
            groups = [maybe_null(rng.choice([1, 2, 3, 4, 5, 6, 9, 14])) for _ in range(rng.randint(0, 4))]
            for g, n in enumerate(groups):
                footfall.append((*key, res, AGES[g], "male", n))
            if rng.random() < 0.85:
                total = sum(n or 0 for n in groups) + rng.choice([0, 0, 0, 1, 3, 4, 8, -2])
                presence.append((*key, rng.choice([8, 8, 8, 7]), maybe_null(max(total, 0))))
        for _ in range(rng.randint(0, 2)):
            od.append((d, windows[0], rng.choice("ab"), rng.choice("cd"), rng.choice([7, 7, 6]), "25-34", "male",
                       maybe_null(rng.randint(1, 9))))
    f = spark.createDataFrame(footfall, "date date, window_start timestamp, h3_cell string, h3_resolution int, "
                                        "age_band string, gender string, visitors long")
    p = spark.createDataFrame(presence, "date date, window_start timestamp, h3_cell string, h3_resolution int, "
                                        "visitors long")
    o = spark.createDataFrame(od, "date date, window_start timestamp, origin_h3 string, destination_h3 string, "
                                  "h3_resolution int, age_band string, gender string, trips long")
    found = sorted(map(tuple, audit_release(f, p, o, k, labels=labels).collect()), key=repr)
    expected = sorted(audit_reference(footfall, presence, od, k, labels), key=repr)
    assert found == expected
    kinds = {f[0] for f in expected}  # the sample reaches every kind of finding
    assert kinds == {"below_k:footfall", "below_k:presence", "below_k:od_flows", "multiple_resolutions:footfall",
                     "multiple_resolutions:presence", "multiple_resolutions:od_flows", "derivable_remainder",
                     "negative_remainder", "pinned_remainder", "footfall_without_presence", "resolution_mismatch"}


# --- the jobs, end to end on a hand-built day ----------------------------------------------------

@pytest.mark.e2e
def test_anonymize_and_aggregate_publish_only_safe_rows(spark, tmp_path):
    """40 commuters home -> work, 3 stay-at-home people: trips, presence and footfall pass the audit."""
    from jobs import aggregate, anonymize

    cfg = load_config(write_conf(tmp_path))
    home, work = (49.4521, 11.0767), (49.50, 11.20)
    cells = spark.createDataFrame([("H", *home, "4G", dt.date(2020, 1, 1), None),
                                   ("W", *work, "4G", dt.date(2020, 1, 1), None)],
                                  "cell_id string, latitude double, longitude double, radio string, "
                                  "valid_from date, valid_to date")
    cells.write.parquet(f"{cfg.lake.raw}/cells")
    # Stages 2 and 3 honour the opt-outs in force when they run: nobody here has opted out.
    prefs = [("4917100099999", False, False, dt.datetime(2026, 1, 1))]
    spark.createDataFrame(prefs, PRIVACY_PREFERENCES).write.parquet(f"{cfg.lake.raw}/privacy_preferences")
    rows = []
    for i in range(43):
        gender = "female" if i % 2 else "male"
        age = "25-34" if i < 36 else "65+"   # 7 people 65+ -> a small group at home and at work
        plan = [("01:00", "H"), ("07:00", "H")] + ([("08:10", "W"), ("16:00", "W")] if i < 40 else [])
        rows += [(D, f"{i:064x}", dt.datetime.combine(D, dt.time.fromisoformat(t)), "data", c, None, None, age, gender)
                 for t, c in plan]
    events = spark.createDataFrame(rows, "date date, pseudo_id string, event_ts timestamp, event_type string, "
                                         "cell_id string, latitude double, longitude double, age_band string, "
                                         "gender string")
    events.write.format("delta").partitionBy("date").save(table_path(cfg.lake, "pseudonymized_events"))
    record_published(spark, cfg.lake, "pseudonymized_events", D)
    # The data-quality suites inside the publisher have their own tests; here only the rule and the audit count.
    def publish_unchecked(spark_, cfg_, outputs, *, date, **_):
        for table, df, _ in outputs:
            write_date(df, table_path(cfg_.lake, table), date=date)
            record_published(spark_, cfg_.lake, table, date)
        return Publication(report="unchecked", rows={table: df.count() for table, df, _ in outputs})

    ctx = Context(spark=spark, cfg=cfg, date=D, run_ts=dt.datetime(2026, 10, 6),
                  keys=Keys(network=Secret(pysecrets.token_bytes(32)), daily=Secret(pysecrets.token_bytes(32))),
                  publisher=publish_unchecked)
    anonymize.stage(ctx)
    aggregate.stage(ctx)

    def read(t):
        return read_date(spark, table_path(cfg.lake, t), date=D, what=t)

    trips = read("anonymized_trips").collect()
    assert len(trips) == 40 and {(r["origin_h3"], r["destination_h3"]) for r in trips} == {
        (h3.geo_to_h3(*home, 7), h3.geo_to_h3(*work, 7))}
    od = read("od_flows").collect()
    assert sorted((r["gender"], r["trips"], r["h3_resolution"]) for r in od) == [("female", 18, 7), ("male", 18, 7)]
    footfall, presence = read("footfall"), read("presence")
    assert footfall.filter(F.col("visitors") < K).count() == 0 and presence.filter(F.col("visitors") < K).count() == 0
    assert audit_release(footfall, presence, read("od_flows"), K).count() == 0
    s = ctx.summary["aggregate"]
    assert s["audit_findings"] == 0
    assert s["footfall_suppressed_below_k"] > 0 and s["footfall_suppressed_secondary"] > 0
    # The summary's counts equal the groups counted independently from the curated rows.
    anon = read("anonymized_events")
    groups = anon.groupBy("window_start", "h3_cell", "age_band", "gender").agg(
        F.count_distinct("daily_id").alias("n")).collect()
    assert s["footfall_groups"] == len(groups)
    assert s["footfall_suppressed_below_k"] == sum(1 for g in groups if g["n"] < K)
    assert s["footfall_released"] == footfall.count() == len(groups) - s["footfall_suppressed_below_k"] - s[
        "footfall_suppressed_secondary"]
    # A leak planted in the rule (secondary suppression switched off) is caught before anything is published.
    def leaky(g, k_min, labels):
        return mark_suppression(g, k_min=k_min, labels=labels).withColumn(
            "suppression", F.when(F.col("suppression") == "secondary", F.lit(None)).otherwise(F.col("suppression")))

    before = sorted(read("footfall").collect())
    with pytest.raises(ValidationError, match="derivable_remainder"):
        aggregate.stage(ctx, suppress=leaky)
    assert sorted(read("footfall").collect()) == before
