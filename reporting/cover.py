"""Stores and the H3 cells that cover them.

Definition ("cover"), used by the store report and documented for buyers:

    An H3 cell covers a store when the cell's hexagon intersects the store's circle,
    i.e. when the distance from the store's centre to the hexagon (0 if the centre lies
    inside it) is at most ``radius_m``.

Distances are measured on the sphere (mean Earth radius 6 371 008.8 m) in an azimuthal
equidistant projection centred on the store: distances from the centre to each hexagon
vertex are exact great-circle distances, the hexagon's edges are straight lines between
the projected vertices (the error is far below a metre at the resolutions we release
and the radii we accept). The covering set is found by a breadth-first walk over H3
neighbours from the cell holding the store's centre: the cells meeting a disc form a
connected set, so the walk finds exactly them.
"""

from __future__ import annotations

import csv
import math
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import h3

EARTH_RADIUS_M = 6_371_008.8
MAX_RADIUS_M = 50_000.0  # a larger "store" is a region, not a store: refuse it
STORE_COLUMNS = ("store_id", "name", "latitude", "longitude", "radius_m")
STORE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # it names the store's output files


class StoreFileError(ValueError):
    """The stores file is missing, unreadable or has a bad row; the message names the store."""


@dataclass(frozen=True)
class Store:
    """One store of the buyer: a circle around a point."""

    store_id: str
    name: str
    latitude: float
    longitude: float
    radius_m: float


def _number(raw: str, column: str, who: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise StoreFileError(f"{who}: {column} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise StoreFileError(f"{who}: {column} must be a finite number, got {raw!r}")
    return value


def parse_stores(text: str, *, source: str = "stores file") -> list[Store]:
    """Parse and check the stores CSV (columns ``store_id,name,latitude,longitude,radius_m``).

    Extra columns are ignored. Every problem raises :class:`StoreFileError` naming the
    store (or the line when the row has no id): a missing column or value, latitude
    outside [-90, 90], longitude outside [-180, 180], ``radius_m`` <= 0 or above
    50 km, an id that cannot name a file, a duplicate ``store_id``, no stores at all.
    """
    reader = csv.DictReader(text.splitlines())
    header = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in STORE_COLUMNS if c not in header]
    if missing:
        raise StoreFileError(f"{source}: missing column(s) {', '.join(missing)} "
                             f"(expected {','.join(STORE_COLUMNS)})")
    reader.fieldnames = header
    stores: list[Store] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        values = {c: (row.get(c) or "").strip() for c in STORE_COLUMNS}
        if not any(values.values()):
            continue  # a blank line
        sid = values["store_id"]
        who = f"{source} line {line}: store '{sid}'" if sid else f"{source} line {line}"
        empty = [c for c in STORE_COLUMNS if not values[c]]
        if empty:
            raise StoreFileError(f"{who}: missing value(s) for {', '.join(empty)}")
        if not STORE_ID.match(sid):
            raise StoreFileError(f"{who}: store_id must be 1-64 letters, digits, '_', '.' or '-' "
                                 "(it names the store's files)")
        if sid in seen:
            raise StoreFileError(f"{who}: duplicate store_id (first on line {seen[sid]})")
        seen[sid] = line
        lat = _number(values["latitude"], "latitude", who)
        lon = _number(values["longitude"], "longitude", who)
        radius = _number(values["radius_m"], "radius_m", who)
        if not -90.0 <= lat <= 90.0:
            raise StoreFileError(f"{who}: latitude must be in [-90, 90], got {lat}")
        if not -180.0 <= lon <= 180.0:
            raise StoreFileError(f"{who}: longitude must be in [-180, 180], got {lon}")
        if not 0.0 < radius <= MAX_RADIUS_M:
            raise StoreFileError(f"{who}: radius_m must be above 0 and at most {MAX_RADIUS_M:.0f} m, got {radius:g}")
        stores.append(Store(sid, values["name"], lat, lon, radius))
    if not stores:
        raise StoreFileError(f"{source}: no stores")
    return stores


def read_stores(path: str | Path) -> list[Store]:
    """Read and check a local stores CSV (UTF-8, a byte-order mark is accepted)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise StoreFileError(f"stores file '{p}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreFileError(f"stores file '{p}' is unreadable: {exc.__class__.__name__}") from None
    return parse_stores(text, source=f"stores file '{p}'")


def _project(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """(x, y) in metres of a point in the azimuthal equidistant projection centred on (lat0, lon0)."""
    p0, p1 = math.radians(lat0), math.radians(lat)
    dlon = math.radians(lon - lon0)
    a = math.sin((p1 - p0) / 2) ** 2 + math.cos(p0) * math.cos(p1) * math.sin(dlon / 2) ** 2
    d = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
    bearing = math.atan2(math.sin(dlon) * math.cos(p1),
                         math.cos(p0) * math.sin(p1) - math.sin(p0) * math.cos(p1) * math.cos(dlon))
    return d * math.sin(bearing), d * math.cos(bearing)


def distance_m(lat0: float, lon0: float, lat: float, lon: float) -> float:
    """Great-circle distance in metres."""
    x, y = _project(lat0, lon0, lat, lon)
    return math.hypot(x, y)


def _segment_distance(ax: float, ay: float, bx: float, by: float) -> float:
    """Distance from the origin to the segment a-b."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
    return math.hypot(ax + t * dx, ay + t * dy)


def cell_distance_m(cell: str, lat: float, lon: float) -> float:
    """Distance in metres from (lat, lon) to the hexagon of ``cell``; 0 when the point is inside."""
    pts = [_project(lat, lon, vlat, vlon) for vlat, vlon in h3.h3_to_geo_boundary(cell)]
    inside = False
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True):
        if (ay > 0) != (by > 0) and ax - ay * (bx - ax) / (by - ay) > 0:
            inside = not inside  # a ray from the origin along +x crosses this edge
    if inside:
        return 0.0
    return min(_segment_distance(ax, ay, bx, by) for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True))


def covering_cells(lat: float, lon: float, radius_m: float, resolution: int) -> list[str]:
    """The H3 cells at ``resolution`` whose hexagon intersects the circle, sorted."""
    start = h3.geo_to_h3(lat, lon, resolution)
    found, queue, seen = [], deque([start]), {start}
    while queue:
        cell = queue.popleft()
        if cell_distance_m(cell, lat, lon) > radius_m:
            continue
        found.append(cell)
        for nb in h3.k_ring(cell, 1):
            if nb not in seen:
                seen.add(nb)
                queue.append(nb)
    return sorted(found)
