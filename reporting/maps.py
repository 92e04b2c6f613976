"""The map report: a self-contained HTML page (Plotly, works offline) and a PNG of the peak hour.

Inputs are the released rows of one date as pandas frames (already aggregated, small):

- ``footfall``: ``window`` ("HH:MM"), ``h3_cell``, ``age_band``, ``gender``, ``visitors``
- ``presence``: ``window``, ``h3_cell``, ``visitors``, ``population_estimate``
- ``od_flows``: ``window``, ``origin_h3``, ``destination_h3``, ``age_band``, ``gender``, ``trips``

Hexagons are drawn as lon/lat polygons (``h3.h3_to_geo_boundary``) on plain axes whose
aspect ratio is corrected for latitude: no tile server, no CDN, nothing fetched.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import math
import textwrap
from typing import Any

import h3
import pandas as pd

from reporting.labels import age_band_key, gender_key

PALETTE = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026")  # ColorBrewer YlOrRd


def windows_of_day(window_minutes: int) -> list[str]:
    """The labels ("HH:MM", UTC) of every window of a day."""
    return [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 24 * 60, window_minutes)]


def boundary(cell: str) -> list[list[float]]:
    """The hexagon of ``cell`` as a closed ring of [lon, lat] pairs, rounded to ~1 m."""
    ring = [[round(lon, 5), round(lat, 5)] for lat, lon in h3.h3_to_geo_boundary(cell)]
    return ring + ring[:1]


def centre(cell: str) -> list[float]:
    lat, lon = h3.h3_to_geo(cell)
    return [round(lon, 5), round(lat, 5)]


def peak_window(footfall: pd.DataFrame) -> str | None:
    """The window with the largest sum of released footfall groups (earliest on a tie)."""
    if footfall.empty:
        return None
    totals = footfall.groupby("window")["visitors"].sum()
    best = totals.max()
    return min(w for w, v in totals.items() if v == best)


def map_payload(footfall: pd.DataFrame, presence: pd.DataFrame, od_flows: pd.DataFrame, *, date: dt.date,
                policy: dict[str, Any], resolution: int | None, od_resolution: int | None,
                window_minutes: int) -> dict[str, Any]:
    """Everything the page's script needs, indexed compactly (cells, bands, genders as integers)."""
    windows = windows_of_day(window_minutes)
    w_of = {w: i for i, w in enumerate(windows)}
    cells = sorted(set(footfall["h3_cell"]) | set(presence["h3_cell"]))
    c_of = {c: i for i, c in enumerate(cells)}
    od_cells = sorted(set(od_flows["origin_h3"]) | set(od_flows["destination_h3"]))
    o_of = {c: i for i, c in enumerate(od_cells)}
    ages = sorted(set(footfall["age_band"]) | set(od_flows["age_band"]), key=age_band_key)
    a_of = {a: i for i, a in enumerate(ages)}
    genders = sorted(set(footfall["gender"]) | set(od_flows["gender"]), key=gender_key)
    g_of = {g: i for i, g in enumerate(genders)}
    peak = peak_window(footfall)
    return {
        "date": date.isoformat(),
        "policy": policy,
        "resolution": resolution,
        "od_resolution": od_resolution,
        "window_minutes": window_minutes,
        "windows": windows,
        "peak_window": w_of[peak] if peak is not None else 0,
        "cells": cells,
        "boundaries": [boundary(c) for c in cells],
        "centres": [centre(c) for c in cells],
        "ages": ages,
        "genders": genders,
        "footfall": [[w_of[r.window], c_of[r.h3_cell], a_of[r.age_band], g_of[r.gender], int(r.visitors)]
                     for r in footfall.itertuples(index=False)],
        "presence": [[w_of[r.window], c_of[r.h3_cell], int(r.visitors), round(r.population_estimate)]
                     for r in presence.itertuples(index=False)],
        "od_cells": od_cells,
        "od_centres": [centre(c) for c in od_cells],
        "od": [[w_of[r.window], o_of[r.origin_h3], o_of[r.destination_h3], a_of[r.age_band], g_of[r.gender],
                int(r.trips)] for r in od_flows.itertuples(index=False)],
    }


def _bounds(payload: dict[str, Any]) -> tuple[float, float, float, float]:
    pts = [p for ring in payload["boundaries"] for p in ring] + payload["od_centres"]
    if not pts:
        return (-0.01, 0.01, -0.01, 0.01)
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    pad_x, pad_y = (max(lons) - min(lons)) * 0.03 + 0.002, (max(lats) - min(lats)) * 0.03 + 0.002
    return min(lons) - pad_x, max(lons) + pad_x, min(lats) - pad_y, max(lats) + pad_y


def map_figure(payload: dict[str, Any]):
    """The Plotly figure the page starts from: equal-aspect lon/lat axes; the script adds the traces."""
    import plotly.graph_objects as go

    x0, x1, y0, y1 = _bounds(payload)
    lat0 = (y0 + y1) / 2
    fig = go.Figure()
    fig.update_layout(
        margin={"l": 60, "r": 20, "t": 10, "b": 50},
        height=760,
        plot_bgcolor="#eef1f4",
        paper_bgcolor="white",
        hovermode="closest",
        dragmode="pan",
        legend={"title": {"text": ""}, "bgcolor": "rgba(255,255,255,0.85)", "x": 1, "xanchor": "right", "y": 1},
        xaxis={"title": {"text": "longitude"}, "range": [x0, x1], "showgrid": True, "gridcolor": "white",
               "zeroline": False, "scaleanchor": "y", "scaleratio": math.cos(math.radians(lat0)),
               "constrain": "domain"},
        yaxis={"title": {"text": "latitude"}, "range": [y0, y1], "showgrid": True, "gridcolor": "white",
               "zeroline": False, "constrain": "domain"},
    )
    return fig


def _json_for_script(data: Any) -> str:
    """JSON safe inside a <script> element (no '</script>' can end it early)."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def map_page(payload: dict[str, Any], *, generated: str) -> str:
    """The self-contained HTML page (plotly.js embedded; opens from a file with no network)."""
    import plotly.io as pio

    fig = map_figure(payload)
    fragment = pio.to_html(fig, include_plotlyjs=True, full_html=False, div_id="map",
                           config={"displaylogo": False, "responsive": True, "scrollZoom": True},
                           post_script=_START)
    policy = payload["policy"]
    if policy["mode"] == "differential_privacy":
        protection = f"differential privacy, &epsilon; = {html.escape(str(policy['epsilon']))}"
    else:
        protection = f"k-anonymity, k_min = {html.escape(str(policy['k_min']))}"
    return _PAGE.format(
        date=html.escape(payload["date"]),
        protection=protection,
        policy_text=html.escape(policy["text"]),
        resolution=html.escape(str(payload["resolution"])),
        od_resolution=html.escape(str(payload["od_resolution"])),
        window_minutes=payload["window_minutes"],
        generated=html.escape(generated),
        data=_json_for_script(payload),
        app=_APP_JS,
        fragment=fragment,
    )


def peak_png(payload: dict[str, Any], *, top_flows: int = 12) -> bytes:
    """A static PNG of the peak window's footfall (all target groups) and its largest OD flows."""
    import matplotlib as mpl
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import BoundaryNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    w = payload["peak_window"]
    label = payload["windows"][w]
    end = (dt.datetime(2000, 1, 1) + dt.timedelta(minutes=int(label[:2]) * 60 + int(label[3:])
                                                  + payload["window_minutes"])).strftime("%H:%M")
    values: dict[int, int] = {}
    for wi, ci, _a, _g, v in payload["footfall"]:
        if wi == w:
            values[ci] = values.get(ci, 0) + v
    day_cells = sorted({ci for _w, ci, *_ in payload["footfall"]})
    flows: dict[tuple[int, int], int] = {}
    for wi, o, d, _a, _g, t in payload["od"]:
        if wi == w and o != d:
            flows[(o, d)] = flows.get((o, d), 0) + t
    top = sorted(flows.items(), key=lambda kv: (-kv[1], kv[0]))[:top_flows]
    # Frame what is drawn: the day's footfall cells and the flows shown.
    pts = [p for c in day_cells for p in payload["boundaries"][c]]
    pts += [payload["od_centres"][i] for (o, d), _t in top for i in (o, d)]
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    lat0 = (min(lats) + max(lats)) / 2
    pad = 0.06 * max(max(lats) - min(lats), (max(lons) - min(lons)) * math.cos(math.radians(lat0))) + 0.002
    x0, x1 = min(lons) - pad / math.cos(math.radians(lat0)), max(lons) + pad / math.cos(math.radians(lat0))
    y0, y1 = min(lats) - pad, max(lats) + pad
    ratio = (y1 - y0) / ((x1 - x0) * math.cos(math.radians(lat0)))  # height / width on the ground
    ax_w = 7.2
    ax_h = min(9.0, max(4.0, ax_w * ratio))
    fig_w, fig_h = 10.0, ax_h + 2.3
    fig = Figure(figsize=(fig_w, fig_h), dpi=110)
    ax = fig.add_axes((0.8 / fig_w, 1.05 / fig_h, ax_w / fig_w, ax_h / fig_h))
    cax = fig.add_axes(((0.8 + ax_w + 0.25) / fig_w, (1.05 + ax_h * 0.15) / fig_h, 0.22 / fig_w, ax_h * 0.7 / fig_h))
    ax.set_facecolor("#eef1f4")
    rings = [payload["boundaries"][ci] for ci in day_cells if ci not in values]
    ax.add_collection(PolyCollection(rings, facecolors="none", edgecolors="#b8bec6", linewidths=0.4))
    cells = sorted(values)
    if cells:
        vals = np.array([values[c] for c in cells], dtype=float)
        edges = _breaks(vals)
        norm = BoundaryNorm(edges, ncolors=len(edges) - 1)
        cmap = mpl.colors.ListedColormap(list(PALETTE[-(len(edges) - 1):]) if len(edges) - 1 <= len(PALETTE)
                                         else mpl.colormaps["YlOrRd"].resampled(len(edges) - 1))
        coll = PolyCollection([payload["boundaries"][c] for c in cells], array=vals, cmap=cmap, norm=norm,
                              edgecolors="white", linewidths=0.3)
        ax.add_collection(coll)
        cb = fig.colorbar(coll, cax=cax)
        cb.set_label("people (sum of released age x gender groups)", fontsize=9)
        cb.set_ticks(edges)
    if top:
        biggest = top[0][1]
        for (o, d), t in top:
            (ox, oy), (dx, dy) = payload["od_centres"][o], payload["od_centres"][d]
            ax.add_patch(FancyArrowPatch((ox, oy), (dx, dy), arrowstyle="-|>", mutation_scale=12,
                                         linewidth=0.8 + 4.2 * t / biggest, color="#1f3b73", alpha=0.75,
                                         connectionstyle="arc3,rad=0.15", zorder=3))
        ax.plot([], [], color="#1f3b73", linewidth=3, label=f"largest {len(top)} OD flows (trips departing)")
        ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1 / math.cos(math.radians(lat0)))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.tick_params(labelsize=8)
    policy = payload["policy"]
    fig.text(0.8 / fig_w, 1 - 0.35 / fig_h, f"Footfall at the peak hour, {payload['date']} {label}\u2013{end} UTC",
             fontsize=14, fontweight="bold", va="top")
    fig.text(0.8 / fig_w, 1 - 0.75 / fig_h,
             f"H3 resolution {payload['resolution']}; {len(cells)} cells with released rows in this window"
             f" (grey outline: released at other hours only)", fontsize=9, color="#333333")
    caption = ("Colour: sum of the released footfall groups (age band x gender) of each cell in the window. "
               f"Release protection: {policy['text']}. Arrows: the largest released origin-destination flows "
               f"(H3 resolution {payload['od_resolution']}) departing in this window.")
    fig.text(0.8 / fig_w, 0.1 / fig_h, "\n".join(textwrap.wrap(caption, 125)), fontsize=7.5, color="#444444",
             va="bottom")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _breaks(vals: Any, classes: int = 7) -> list[float]:
    """Class edges from quantiles, rounded to two significant digits (the page's script does the same)."""
    import numpy as np

    lo, hi = float(np.min(vals)), float(np.max(vals))
    edges = [lo]
    for i in range(1, classes):
        q = float(np.quantile(vals, i / classes))
        r = _round2(q)
        if edges[-1] < r < hi:
            edges.append(r)
    edges.append(hi + 1)
    return edges


def _round2(x: float) -> float:
    if x <= 0:
        return 0.0
    mag = 10 ** (math.floor(math.log10(x)) - 1)
    return round(x / mag) * mag


# The figure is drawn where the fragment sits; the controls and the hourly chart below it
# may not be parsed yet, so the script starts once the whole document is.
_START = ("if (document.readyState === 'loading') "
          "{ document.addEventListener('DOMContentLoaded', () => window.mapReport.start()); } "
          "else { window.mapReport.start(); }")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Mobility insights {date}: footfall, presence and flows</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; margin: 0; color: #1d2733;
         background: #fafbfc; }}
  header {{ padding: 16px 24px 8px; background: white; border-bottom: 1px solid #dde2e8; }}
  h1 {{ font-size: 21px; margin: 0 0 6px; }}
  .policy {{ background: #fff6e0; border-left: 4px solid #e0a100; padding: 6px 10px; font-size: 14px;
            margin: 6px 0 2px; }}
  .controls {{ display: flex; flex-wrap: wrap; gap: 14px 22px; align-items: center; padding: 10px 24px;
              background: white; border-bottom: 1px solid #dde2e8; font-size: 14px; }}
  .controls label {{ display: flex; gap: 6px; align-items: center; }}
  .controls select, .controls button {{ font-size: 14px; padding: 3px 6px; }}
  #window-slider {{ width: 320px; }}
  #window-label {{ font-weight: 600; min-width: 110px; display: inline-block; }}
  main {{ padding: 8px 24px 24px; }}
  #status {{ font-size: 14px; margin: 4px 0 6px; color: #334; }}
  #map, #hours {{ background: white; border: 1px solid #dde2e8; }}
  .notes {{ font-size: 13px; color: #3b4652; max-width: 1100px; }}
  .notes dt {{ font-weight: 600; margin-top: 6px; }}
</style>
</head>
<body>
<header>
  <h1>Where people were on {date} &mdash; released mobility insights</h1>
  <div>Date <b>{date}</b> &middot; release protection: <b>{protection}</b> &middot; H3 resolution {resolution}
    (flows {od_resolution}) &middot; {window_minutes}-minute windows, times in UTC</div>
  <div class="policy" id="policy">{policy_text}. An empty hexagon or a missing group means
    &ldquo;not released&rdquo;, never &ldquo;nobody&rdquo;.</div>
</header>
<div class="controls">
  <label>Show <select id="layer">
    <option value="footfall">footfall (sum of released age &times; gender groups)</option>
    <option value="presence">presence (all released visitors)</option>
    <option value="population">population estimate (presence scaled)</option>
  </select></label>
  <label>Age band <select id="age"></select></label>
  <label>Gender <select id="gender"></select></label>
  <label>Window <input type="range" id="window-slider" min="0" max="0" step="1" value="0">
    <span id="window-label"></span></label>
  <button id="play" type="button">&#9654; play</button>
  <label><input type="checkbox" id="flows" checked> largest OD flows</label>
  <label>top <select id="top"><option>5</option><option selected>10</option><option>20</option>
    <option>50</option></select></label>
</div>
<main>
  <div id="status"></div>
  <script type="application/json" id="report-data">{data}</script>
  <script>{app}</script>
  {fragment}
  <div id="hours" style="height:210px; margin-top:10px"></div>
  <dl class="notes">
    <dt>Footfall</dt><dd>Per hexagon and window, the sum of the released groups (distinct people per age
      band and gender) that match the filter. Groups below the release threshold were suppressed
      before release and are missing from the sum; the hourly bars add up hexagons, so a person seen in
      two hexagons in one window counts twice.</dd>
    <dt>Presence</dt><dd>Distinct people per hexagon and window, all groups together (no filter applies);
      population estimate scales it by the operator's market share.</dd>
    <dt>Flows</dt><dd>Trips (distinct people) between two H3 cells of resolution {od_resolution}, departing in
      the window, filtered like footfall; line width is proportional to trips.</dd>
    <dt>Source</dt><dd>Only the released tables insights/footfall, insights/presence and insights/od_flows of
      {date}. Generated {generated}.</dd>
  </dl>
</main>
</body>
</html>
"""

_APP_JS = r"""
window.mapReport = (function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const PALETTE = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026"];
  const state = { layer: "footfall", age: "all", gender: "all", w: D.peak_window, flows: true, top: 10 };
  const nW = D.windows.length, nC = D.cells.length;
  let timer = null;

  function matches(a, g) {
    return (state.age === "all" || a === Number(state.age)) && (state.gender === "all" || g === Number(state.gender));
  }
  // values[w][c]: the number shown for cell c in window w, or NaN when nothing was released.
  function values() {
    const v = Array.from({ length: nW }, () => new Float64Array(nC).fill(NaN));
    if (state.layer === "footfall") {
      for (const [w, c, a, g, n] of D.footfall) {
        if (matches(a, g)) v[w][c] = (isNaN(v[w][c]) ? 0 : v[w][c]) + n;
      }
    } else {
      const col = state.layer === "presence" ? 2 : 3;
      for (const r of D.presence) v[r[0]][r[1]] = r[col];
    }
    return v;
  }
  function round2(x) {
    if (x <= 0) return 0;
    const mag = Math.pow(10, Math.floor(Math.log10(x)) - 1);
    return Math.round(x / mag) * mag;
  }
  function quantile(sorted, q) {
    const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }
  function breaks(v) {  // same rule as reporting.maps._breaks, over the whole day
    const all = [];
    for (const row of v) for (const x of row) if (!isNaN(x)) all.push(x);
    if (!all.length) return [];
    all.sort((a, b) => a - b);
    const lo = all[0], hi = all[all.length - 1], edges = [lo];
    for (let i = 1; i < PALETTE.length; i++) {
      const r = round2(quantile(all, i / PALETTE.length));
      if (edges[edges.length - 1] < r && r < hi) edges.push(r);
    }
    edges.push(hi + 1);
    return edges;
  }
  function fmt(x) { return Math.round(x).toLocaleString("en-US"); }
  function windowText(w) {
    const start = D.windows[w], m = Number(start.slice(0, 2)) * 60 + Number(start.slice(3)) + D.window_minutes;
    const end = String(Math.floor(m / 60) % 24).padStart(2, "0") + ":" + String(m % 60).padStart(2, "0");
    return start + "\u2013" + end + " UTC";
  }
  function polygons(cells) {
    const x = [], y = [];
    for (const c of cells) {
      for (const [lon, lat] of D.boundaries[c]) { x.push(lon); y.push(lat); }
      x.push(null); y.push(null);
    }
    return { x: x, y: y };
  }
  function flowTraces() {
    const agg = new Map();
    for (const [w, o, d, a, g, t] of D.od) {
      if (w !== state.w || o === d) continue;
      if (state.layer === "footfall" && !matches(a, g)) continue;
      const key = o + ">" + d;
      agg.set(key, (agg.get(key) || 0) + t);
    }
    const top = [...agg.entries()].sort((p, q) => q[1] - p[1] || (p[0] < q[0] ? -1 : 1)).slice(0, state.top);
    if (!top.length) return { traces: [], annotations: [], n: 0 };
    const biggest = top[0][1], traces = [], annotations = [], mx = [], my = [], text = [];
    top.forEach(([key, t], i) => {
      const [o, d] = key.split(">").map(Number);
      const [ox, oy] = D.od_centres[o], [dx, dy] = D.od_centres[d];
      traces.push({ type: "scatter", mode: "lines", x: [ox, dx], y: [oy, dy], hoverinfo: "skip",
                    line: { color: "rgba(31,59,115,0.75)", width: 1 + 7 * t / biggest },
                    name: "largest OD flows (trips)", legendgroup: "flows", showlegend: i === 0 });
      annotations.push({ x: dx, y: dy, ax: ox + (dx - ox) * 0.8, ay: oy + (dy - oy) * 0.8, xref: "x", yref: "y",
                         axref: "x", ayref: "y", showarrow: true, arrowhead: 2, arrowsize: 1.2,
                         arrowwidth: 1.5, arrowcolor: "rgba(31,59,115,0.9)", text: "" });
      mx.push((ox + dx) / 2); my.push((oy + dy) / 2);
      text.push(D.od_cells[o] + " \u2192 " + D.od_cells[d] + "<br>" + fmt(t) + " trips departing " +
                windowText(state.w));
    });
    traces.push({ type: "scatter", mode: "markers", x: mx, y: my, text: text, hoverinfo: "text", showlegend: false,
                  marker: { size: 9, color: "rgba(31,59,115,0.9)", symbol: "diamond" }, name: "flow" });
    return { traces: traces, annotations: annotations, n: top.length };
  }
  function render() {
    const v = values(), edges = breaks(v), row = v[state.w];
    const traces = [], classes = edges.slice(0, -1).map(() => []);
    const shown = [], absent = [];
    const everywhere = new Set();
    for (const r of v) r.forEach((x, c) => { if (!isNaN(x)) everywhere.add(c); });
    row.forEach((x, c) => {
      if (isNaN(x)) { if (everywhere.has(c)) absent.push(c); return; }
      let k = 0;
      while (k < classes.length - 1 && x >= edges[k + 1]) k++;
      classes[k].push(c); shown.push(c);
    });
    if (absent.length) {
      const p = polygons(absent);
      traces.push({ type: "scatter", mode: "lines", x: p.x, y: p.y, hoverinfo: "skip",
                    line: { color: "#b8bec6", width: 0.6 }, name: "not released in this window" });
    }
    classes.forEach((cells, k) => {
      const p = polygons(cells);
      const hi = edges[k + 1] - 1;
      traces.push({ type: "scatter", mode: "lines", fill: "toself",
                    x: p.x.length ? p.x : [null], y: p.y.length ? p.y : [null],
                    fillcolor: PALETTE[PALETTE.length - classes.length + k], hoverinfo: "skip",
                    line: { color: "rgba(255,255,255,0.8)", width: 0.5 },
                    name: fmt(edges[k]) + (hi > edges[k] ? "\u2013" + fmt(hi) : ""), legendgroup: "c" + k });
    });
    const what = { footfall: "people (sum of released groups)", presence: "people (presence)",
                   population: "population estimate" }[state.layer];
    traces.push({ type: "scatter", mode: "markers",
                  x: shown.map(c => D.centres[c][0]), y: shown.map(c => D.centres[c][1]),
                  customdata: shown.map(c => [D.cells[c], row[c]]), name: "cells", showlegend: false,
                  marker: { size: 8, opacity: 0 },
                  hovertemplate: "%{customdata[0]}<br>%{customdata[1]:,} " + what + "<extra></extra>" });
    const f = state.flows ? flowTraces() : { traces: [], annotations: [], n: 0 };
    const el = document.getElementById("map");
    const layout = Object.assign({}, el.layout, { annotations: f.annotations, uirevision: "keep" });
    Plotly.react(el, traces.concat(f.traces), layout, { displaylogo: false, responsive: true, scrollZoom: true });
    let total = 0;
    for (const c of shown) total += row[c];
    document.getElementById("window-label").textContent = windowText(state.w);
    const filt = state.layer === "footfall" ? (state.age === "all" ? "all age bands" : D.ages[state.age]) + ", " +
      (state.gender === "all" ? "all genders" : D.genders[state.gender]) : "all people";
    document.getElementById("status").textContent = D.date + " " + windowText(state.w) + " \u00b7 " + filt +
      " \u00b7 " + shown.length + " hexagons with released rows, " + fmt(total) + " " + what + " summed over hexagons" +
      (state.flows ? " \u00b7 " + f.n + " flows shown" : "");
    renderHours(v);
  }
  function renderHours(v) {
    const totals = v.map(r => {
      let s = 0, any = false;
      for (const x of r) if (!isNaN(x)) { s += x; any = true; }
      return any ? s : null;
    });
    const colors = totals.map((_, w) => (w === state.w ? "#b10026" : "#2b6a99"));
    Plotly.react("hours", [{ type: "bar", x: D.windows, y: totals, marker: { color: colors },
                             hovertemplate: "%{x} UTC: %{y:,}<extra></extra>" }],
                 { margin: { l: 60, r: 20, t: 28, b: 40 }, height: 210,
                   title: { text: "Per window, summed over hexagons (click a bar to show it)", font: { size: 13 } },
                   xaxis: { type: "category", title: { text: "window start (UTC)" } }, yaxis: { rangemode: "tozero" },
                   plot_bgcolor: "white" },
                 { displaylogo: false, responsive: true });
  }
  function fill(select, labels) {
    select.add(new Option("all", "all"));
    labels.forEach((l, i) => select.add(new Option(l, String(i))));
  }
  function set(changes) { Object.assign(state, changes); syncControls(); render(); }
  function syncControls() {
    document.getElementById("window-slider").value = String(state.w);
    const demo = state.layer === "footfall";
    document.getElementById("age").disabled = !demo;
    document.getElementById("gender").disabled = !demo;
  }
  function start() {
    const slider = document.getElementById("window-slider");
    slider.max = String(nW - 1);
    fill(document.getElementById("age"), D.ages);
    fill(document.getElementById("gender"), D.genders);
    slider.addEventListener("input", () => set({ w: Number(slider.value) }));
    document.getElementById("layer").addEventListener("change", e => set({ layer: e.target.value }));
    document.getElementById("age").addEventListener("change", e => set({ age: e.target.value }));
    document.getElementById("gender").addEventListener("change", e => set({ gender: e.target.value }));
    document.getElementById("flows").addEventListener("change", e => set({ flows: e.target.checked }));
    document.getElementById("top").addEventListener("change", e => set({ top: Number(e.target.value) }));
    document.getElementById("play").addEventListener("click", e => {
      if (timer) { clearInterval(timer); timer = null; e.target.innerHTML = "&#9654; play"; return; }
      e.target.innerHTML = "&#10074;&#10074; pause";
      timer = setInterval(() => set({ w: (state.w + 1) % nW }), 900);
    });
    syncControls();
    render();
    document.getElementById("hours").on("plotly_click", ev => {
      const w = D.windows.indexOf(ev.points[0].x);
      if (w >= 0) set({ w: w });
    });
  }
  return { start: start, set: set, state: state, values: values, data: D };
})();
"""
