"""The buyers' reports on a hand-built release (k_min = 10) whose sums are worked out by hand.

Cells (H3 resolution 8, Nuremberg): C0 holds the Hauptmarkt; N1, N2 are two of its
neighbours; FAR is 5 km away. Released footfall of D (every row >= k_min):

======  ======  =====  =======  ========
window  cell    age    gender   visitors
======  ======  =====  =======  ========
10:00   C0      25-34  female   12
10:00   C0      25-34  male     15
10:00   N1      25-34  female   20
10:00   FAR     25-34  female   30
11:00   N1      35-44  male     11
11:00   N2      35-44  male     13
17:00   FAR     65+    unknown  40
======  ======  =====  =======  ========

Stores: ``centre`` (C0's centre, 300 m: C0 only, its neighbours are ~400 m away),
``ring`` (C0's centre, 600 m: C0 and its six neighbours), ``empty`` (a cell with no
released row), so by hand:

- centre: 10:00 25-34 female 12, 10:00 25-34 male 15;
- ring:   10:00 25-34 female 12 + 20 = 32 (2 cells), 10:00 25-34 male 15, 11:00 35-44 male 11 + 13 = 24 (2 cells);
- empty:  "no released data".
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from pathlib import Path

import h3
import pytest
from pyspark.sql import types as T

from jobs import report, store_report
from mobility.config import load_config
from reporting.cover import EARTH_RADIUS_M, StoreFileError, covering_cells, parse_stores
from reporting.labels import release_policy
from tests.conftest import record_published, write_conf

D = dt.date(2026, 10, 5)
RES = 8
C0 = h3.geo_to_h3(49.4539, 11.0775, RES)
N1, N2 = sorted(set(h3.k_ring(C0, 1)) - {C0})[:2]
FAR = h3.geo_to_h3(49.4539 + 0.045, 11.0775, RES)  # 5 km north
EMPTY = h3.geo_to_h3(49.40, 11.00, RES)
OD_A, OD_B = h3.geo_to_h3(49.4539, 11.0775, 7), h3.geo_to_h3(49.42, 11.13, 7)

FOOTFALL = [("10:00", C0, "25-34", "female", 12), ("10:00", C0, "25-34", "male", 15),
            ("10:00", N1, "25-34", "female", 20), ("10:00", FAR, "25-34", "female", 30),
            ("11:00", N1, "35-44", "male", 11), ("11:00", N2, "35-44", "male", 13),
            ("17:00", FAR, "65+", "unknown", 40)]
PRESENCE = [("10:00", C0, 40, 133), ("10:00", N1, 35, 117), ("10:00", FAR, 45, 150), ("11:00", N1, 30, 100),
            ("11:00", N2, 25, 83), ("17:00", FAR, 50, 167)]
OD = [("10:00", OD_A, OD_B, "25-34", "female", 14), ("10:00", OD_B, OD_A, "25-34", "male", 10)]


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(D, dt.time.fromisoformat(hhmm))


def centre_of(cell: str) -> tuple[float, float]:
    return h3.h3_to_geo(cell)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """A release written directly as the three Delta tables (no pipeline run)."""
    tmp = tmp_path_factory.mktemp("buyers")
    conf = write_conf(tmp, privacy={"k_min": 10})
    insights = tmp / "lake" / "insights"
    common = [T.StructField("date", T.DateType()), T.StructField("window_start", T.TimestampType())]
    demo = [T.StructField("age_band", T.StringType()), T.StructField("gender", T.StringType())]
    cell = [T.StructField("h3_cell", T.StringType()), T.StructField("h3_resolution", T.IntegerType())]
    footfall = spark.createDataFrame(
        [(D, at(w), c, RES, a, g, v) for w, c, a, g, v in FOOTFALL],
        T.StructType([*common, *cell, *demo, T.StructField("visitors", T.LongType())]))
    presence = spark.createDataFrame(
        [(D, at(w), c, RES, v, p) for w, c, v, p in PRESENCE],
        T.StructType([*common, *cell, T.StructField("visitors", T.LongType()),
                      T.StructField("population_estimate", T.LongType())]))
    od = spark.createDataFrame(
        [(D, at(w), o, d, 7, a, g, t) for w, o, d, a, g, t in OD],
        T.StructType([*common, T.StructField("origin_h3", T.StringType()),
                      T.StructField("destination_h3", T.StringType()),
                      T.StructField("h3_resolution", T.IntegerType()), *demo, T.StructField("trips", T.LongType())]))
    cfg = load_config(conf)
    for name, df in (("footfall", footfall), ("presence", presence), ("od_flows", od)):
        df.write.format("delta").partitionBy("date").save(str(insights / name))
        record_published(spark, cfg.lake, name, D)  # readers read the release the ledger names
    lat, lon = centre_of(C0)
    stores = tmp / "stores.csv"
    stores.write_text("store_id,name,latitude,longitude,radius_m\n"
                      f"centre,Centre,{lat},{lon},300\n"
                      f"ring,Ring,{lat},{lon},600\n"
                      f"empty,Nowhere,{centre_of(EMPTY)[0]},{centre_of(EMPTY)[1]},300\n", encoding="utf-8")
    return {"conf": conf, "reports": tmp / "lake" / "reports" / "buyers" / D.isoformat(), "stores": stores}


@pytest.fixture(scope="module")
def store_run(lake):
    code = store_report.main(["--conf", str(lake["conf"]), "--date", D.isoformat(), "--stores", str(lake["stores"])])
    assert code == 0
    return lake["reports"] / "stores"


@pytest.fixture(scope="module")
def map_run(lake):
    code = report.main(["--conf", str(lake["conf"]), "--date", D.isoformat()])
    assert code == 0
    return lake["reports"]


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


# --- cover -------------------------------------------------------------------------------

def _geodesic_distance_to_hexagon(lat: float, lon: float, cell: str, steps: int = 2000) -> float:
    """Independent check: the nearest of many points along the hexagon's edges (haversine)."""
    ring = h3.h3_to_geo_boundary(cell)
    best = math.inf
    for (alat, alon), (blat, blon) in zip(ring, ring[1:] + ring[:1], strict=True):
        for i in range(steps + 1):
            t = i / steps
            plat, plon = alat + t * (blat - alat), alon + t * (blon - alon)
            p1, p2 = math.radians(lat), math.radians(plat)
            a = (math.sin((p2 - p1) / 2) ** 2
                 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(plon - lon) / 2) ** 2)
            best = min(best, 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a)))
    return best


def test_cover_is_the_cells_whose_hexagon_meets_the_circle():
    lat, lon = centre_of(C0)
    assert covering_cells(lat, lon, 300, RES) == [C0]
    assert covering_cells(lat, lon, 600, RES) == sorted(h3.k_ring(C0, 1))


@pytest.mark.parametrize("delta_m, covered", [(+2.0, True), (-2.0, False)])
def test_a_store_just_inside_or_outside_a_cells_reach(delta_m, covered):
    # A store 100 m east of C0's centre: N1 is covered once the radius reaches N1's hexagon.
    lat, lon = centre_of(C0)
    lon += 100 / (EARTH_RADIUS_M * math.cos(math.radians(lat))) * 180 / math.pi
    for neighbour in sorted(set(h3.k_ring(C0, 1)) - {C0}):
        d = _geodesic_distance_to_hexagon(lat, lon, neighbour)
        cells = covering_cells(lat, lon, d + delta_m, RES)
        assert (neighbour in cells) is covered, (neighbour, d)


@pytest.mark.parametrize("text, message", [
    ("store_id,name,latitude,longitude\nx,X,49,11\n", "missing column(s) radius_m"),
    ("store_id,name,latitude,longitude,radius_m\nx,X,49,11,0\n", "store 'x': radius_m must be above 0"),
    ("store_id,name,latitude,longitude,radius_m\nx,X,49,11,60000\n", "store 'x': radius_m must be above 0 and at most"),
    ("store_id,name,latitude,longitude,radius_m\nx,X,95,11,300\n", "store 'x': latitude must be in [-90, 90]"),
    ("store_id,name,latitude,longitude,radius_m\nx,X,49,11,300\nx,Y,49,11,300\n",
     "line 3: store 'x': duplicate store_id (first on line 2)"),
    ("store_id,name,latitude,longitude,radius_m\nx,X,,11,300\n", "store 'x': missing value(s) for latitude"),
    ("store_id,name,latitude,longitude,radius_m\nx,X,49,abc,300\n", "store 'x': longitude must be a number"),
    ("store_id,name,latitude,longitude,radius_m\n../x,X,49,11,300\n", "store '../x': store_id must be"),
    ("store_id,name,latitude,longitude,radius_m\n", "no stores"),
])
def test_bad_store_rows_are_refused_naming_the_store(text, message):
    with pytest.raises(StoreFileError) as err:
        parse_stores(text)
    assert message in str(err.value)


def test_bad_stores_file_fails_the_job_with_one_error_line(lake, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("store_id,name,latitude,longitude,radius_m\nok,Fine,49.45,11.07,300\nhbf,Station,49.44,11.08,-5\n")
    for path in (bad, tmp_path / "missing.csv"):
        code = store_report.main(["--conf", str(lake["conf"]), "--date", D.isoformat(), "--stores", str(path)])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert code == 1
        assert len(errors) == 1
    assert "does not exist" in errors[0]


# --- store report ------------------------------------------------------------------------

def test_store_sums_equal_the_hand_computed_sums_of_released_rows(store_run):
    got = {(r["store_id"], r["window_start"], r["age_band"], r["gender"]): (int(r["visitors_sum"]),
                                                                            int(r["cells_with_release"]))
           for r in rows_of(store_run / "stores.csv") if r["status"] == "released"}
    assert got == {
        ("centre", "2026-10-05T10:00:00Z", "25-34", "female"): (12, 1),
        ("centre", "2026-10-05T10:00:00Z", "25-34", "male"): (15, 1),
        ("ring", "2026-10-05T10:00:00Z", "25-34", "female"): (32, 2),
        ("ring", "2026-10-05T10:00:00Z", "25-34", "male"): (15, 1),
        ("ring", "2026-10-05T11:00:00Z", "35-44", "male"): (24, 2),
    }
    ring = rows_of(store_run / "ring.csv")
    assert {r["cells_covered"] for r in ring} == {"7"} and {r["store_id"] for r in ring} == {"ring"}


def test_a_store_without_released_cells_says_so_and_is_not_zero(store_run):
    empty = rows_of(store_run / "empty.csv")
    assert [(r["status"], r["visitors_sum"], r["window_start"]) for r in empty] == [("no released data", "", "")]
    assert "no released data" in (store_run / "README.txt").read_text()
    assert (store_run / "empty.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_says_what_the_number_is(store_run):
    text = " ".join((store_run / "README.txt").read_text().split())
    assert "counts twice" in text and "not a count of unique visitors" in text
    assert "k_min = 10" in text and "absent, not zero" in text
    cells = rows_of(store_run / "store_cells.csv")
    assert {(r["h3_cell"], r["has_released_footfall"]) for r in cells if r["store_id"] == "centre"} == {(C0, "True")}


# --- map report --------------------------------------------------------------------------

def page_payload(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_map_page_holds_exactly_the_released_rows(map_run):
    page = (map_run / "map.html").read_text(encoding="utf-8")
    data = page_payload(page)
    rows = {(data["windows"][w], data["cells"][c], data["ages"][a], data["genders"][g], v)
            for w, c, a, g, v in data["footfall"]}
    assert rows == set(FOOTFALL)
    assert data["windows"][data["peak_window"]] == "10:00"  # 12 + 15 + 20 + 30 = 77, the largest
    assert "k_min = 10" in page and "absent, not zero" in page and D.isoformat() in page
    assert "cdn." not in page.split('id="report-data"')[0]  # plotly.js is embedded, not fetched
    assert (map_run / "peak_hour.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_policy_shows_epsilon_in_differential_privacy_mode():
    class Dp:
        epsilon = 0.5

    class Privacy:
        mode, k_min, dp = "differential_privacy", 10, Dp()

    policy = release_policy(Privacy())
    assert policy["epsilon"] == 0.5 and "\u03b5 = 0.5" in policy["text"] and "k_min" not in policy["text"]


def slide(page, window: int) -> None:
    page.evaluate("w => { const s = document.getElementById('window-slider'); s.value = String(w);"
                  " s.dispatchEvent(new Event('input')); }", window)
    page.wait_for_timeout(100)


@pytest.mark.e2e
def test_map_page_renders_in_chromium_without_console_errors(map_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium is not installed (make browser)")
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.goto((map_run / "map.html").as_uri())
        page.wait_for_function("document.getElementById('map').data && document.getElementById('map').data.length")

        def shown() -> dict[str, float]:
            data = page.evaluate("document.getElementById('map').data.filter(t => t.name === 'cells')[0].customdata")
            return {cell: value for cell, value in data}

        assert shown() == {C0: 27, N1: 20, FAR: 30}  # 10:00 (the peak), all groups summed
        assert page.locator("#window-label").inner_text().startswith("10:00")
        page.select_option("#age", label="35-44")
        slide(page, 11)
        assert shown() == {N1: 11, N2: 13}
        page.select_option("#layer", "presence")
        assert shown() == {N1: 30, N2: 25}
        page.select_option("#layer", "footfall")
        page.select_option("#age", label="all")
        slide(page, 10)
        flows = page.evaluate("document.getElementById('map').data.filter(t => t.name === 'flow')[0].text")
        assert sorted(f.split("<br>")[1].split(" ")[0] for f in flows) == ["10", "14"]
        shot = tmp_path / "map.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    print(f"screenshot: {shot}")
    assert errors == []
