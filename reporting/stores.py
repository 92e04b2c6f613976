"""The store report: per store, visitors per window by target group, as CSV, text and chart.

Input is what ``transforms.buyers.to_store_visitors`` computed from released footfall
(already aggregated, a few rows per store), the stores and their covering cells. A store
none of whose covering cells has a released row gets an explicit ``no released data``
row and chart, never a zero.
"""

from __future__ import annotations

import datetime as dt
import io
import textwrap
from collections.abc import Iterable
from typing import Any

import pandas as pd

from reporting.cover import Store
from reporting.labels import SUM_MEANING, age_band_key, gender_key

STATUS_RELEASED = "released"
STATUS_NO_DATA = "no released data"
CSV_COLUMNS = ("date", "store_id", "name", "status", "window_start", "age_band", "gender",
               "visitors_sum", "cells_with_release", "cells_covered", "h3_resolution", "radius_m")


def store_table(stores: Iterable[Store], covers: dict[str, list[str]], sums: pd.DataFrame, *,
                date: dt.date, resolution: int) -> pd.DataFrame:
    """One row per store, window and target group; one ``no released data`` row for a store without any.

    Args:
        stores: the checked stores.
        covers: store_id -> the H3 cells covering it.
        sums: ``store_id, window_start, age_band, gender, visitors_sum, cells_with_release``.
        date: the release date.
        resolution: the H3 resolution of the released footfall (and of ``covers``).
    """
    out = []
    for store in stores:
        mine = sums[sums["store_id"] == store.store_id]
        base = {"date": date.isoformat(), "store_id": store.store_id, "name": store.name,
                "cells_covered": len(covers[store.store_id]), "h3_resolution": resolution,
                "radius_m": store.radius_m}
        if mine.empty:
            out.append({**base, "status": STATUS_NO_DATA, "window_start": None, "age_band": None,
                        "gender": None, "visitors_sum": None, "cells_with_release": 0})
            continue
        rows = sorted(mine.to_dict("records"),
                      key=lambda r: (r["window_start"], age_band_key(r["age_band"]), gender_key(r["gender"])))
        for r in rows:
            out.append({**base, "status": STATUS_RELEASED,
                        "window_start": pd.Timestamp(r["window_start"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "age_band": r["age_band"], "gender": r["gender"],
                        "visitors_sum": int(r["visitors_sum"]), "cells_with_release": int(r["cells_with_release"])})
    table = pd.DataFrame(out, columns=list(CSV_COLUMNS))
    table["visitors_sum"] = table["visitors_sum"].astype("Int64")
    return table


def to_csv(table: pd.DataFrame) -> str:
    """The table as CSV text (empty fields where a store has no released data)."""
    return table.to_csv(index=False, lineterminator="\n")


def readme_text(*, date: dt.date, policy: dict[str, Any], resolution: int, window_minutes: int,
                stores: list[Store], table: pd.DataFrame) -> str:
    """README.txt written next to the CSVs and charts: what every number is, and what it is not."""
    status = []
    for s in stores:
        mine = table[table["store_id"] == s.store_id]
        first = mine.iloc[0]
        note = (f"{int(mine['visitors_sum'].sum())} summed over {len(mine)} rows"
                if first["status"] == STATUS_RELEASED else STATUS_NO_DATA)
        status.append(f"  {s.store_id:<16} {s.name[:32]:<32} r={s.radius_m:>7g} m  "
                      f"{first['cells_covered']:>4} cells  {note}")
    return "\n".join([
        f"Store report for {date.isoformat()} (built from the released insights/footfall table only)",
        "",
        "What the number visitors_sum is:",
        *textwrap.wrap(
            f"For a store, a {window_minutes}-minute window (window_start, UTC) and a target group "
            "(age_band x gender): the SUM of the released footfall rows of that window and group "
            f"over the H3 cells (resolution {resolution}) that cover the store. " + SUM_MEANING,
            width=88, initial_indent="  ", subsequent_indent="  "),
        *textwrap.wrap(
            "A cell covers a store when its hexagon intersects the store's circle (the distance "
            "from the store's centre to the hexagon, 0 if inside, is at most radius_m; distances "
            "on the sphere). store_cells.csv lists them.",
            width=88, initial_indent="  ", subsequent_indent="  "),
        *textwrap.wrap(f"Release protection: {policy['text']}.", width=88, initial_indent="  ",
                       subsequent_indent="  "),
        *textwrap.wrap(
            "A window or group without a row had no released row in any covering cell (suppressed or "
            "nobody there): it is unknown, not zero. A store with status 'no released data' has no "
            "released row in any covering cell all day.",
            width=88, initial_indent="  ", subsequent_indent="  "),
        "",
        "Columns: " + ", ".join(CSV_COLUMNS),
        "  cells_with_release: covering cells that contributed to this sum; cells_covered: all covering cells.",
        "",
        "Files: stores.csv (all stores), <store_id>.csv and <store_id>.png per store, store_cells.csv.",
        "",
        "Stores:",
        *status,
        "",
    ])


def _caption(store: Store, *, date: dt.date, policy: dict[str, Any], resolution: int, n_cells: int,
             width: int = 190) -> str:
    return "\n".join(textwrap.wrap(
        f"Sum of released cell-hour groups over the {n_cells} H3 cell(s) (resolution {resolution}) whose "
        f"hexagon intersects the {store.radius_m:g} m circle around the store, {date.isoformat()}, times in UTC. "
        + SUM_MEANING + f" Release protection: {policy['text']}.", width=width))


def store_chart_png(store: Store, rows: pd.DataFrame, *, date: dt.date, policy: dict[str, Any],
                    resolution: int, window_minutes: int, n_cells: int) -> bytes:
    """A PNG per store: a heat map of target group x window, grey where nothing was released.

    ``rows`` are the store's rows of :func:`store_table`.
    """
    import matplotlib as mpl
    import numpy as np
    from matplotlib.figure import Figure

    title = f"{store.name} ({store.store_id}), {date.isoformat()}: visitors per hour by target group"
    caption = _caption(store, date=date, policy=policy, resolution=resolution, n_cells=n_cells,
                       width=150 if rows["status"].eq(STATUS_NO_DATA).all() else 190)
    cells_word = "cell" if n_cells == 1 else "cells"
    released = rows[rows["status"] == STATUS_RELEASED]
    if released.empty:
        fig = Figure(figsize=(12, 3.2), dpi=100)
        fig.suptitle(title, fontsize=13, fontweight="bold", x=0.02, ha="left")
        fig.text(0.5, 0.55, "No released data", ha="center", va="center", fontsize=22, color="#b03a2e")
        fig.text(0.5, 0.36, f"None of the {n_cells} H3 {cells_word} covering this store has a released footfall row "
                 "on this date.\nThis is not zero visitors: groups below the release threshold are suppressed.",
                 ha="center", va="center", fontsize=10)
        fig.text(0.02, 0.03, caption, fontsize=7.5, color="#444444", va="bottom")
        return _png(fig)

    windows = [dt.time(minute=m % 60, hour=m // 60) for m in range(0, 24 * 60, window_minutes)]
    labels = [w.strftime("%H") if window_minutes == 60 else w.strftime("%H:%M") for w in windows]
    when = pd.to_datetime(released["window_start"], utc=True)
    col_of = {w: i for i, w in enumerate(windows)}
    cols = [col_of.get(dt.time(t.hour, t.minute)) for t in when]
    bands = sorted(released["age_band"].unique(), key=age_band_key)
    genders = sorted(released["gender"].unique(), key=gender_key)
    groups = [(b, g) for b in bands for g in genders]
    row_of = {grp: i for i, grp in enumerate(groups)}
    grid = np.full((len(groups), len(windows)), np.nan)
    for (b, g, v), c in zip(released[["age_band", "gender", "visitors_sum"]].itertuples(index=False), cols,
                            strict=True):
        if c is not None:
            grid[row_of[(b, g)], c] = v
    hourly = np.nansum(grid, axis=0)
    has_any = ~np.all(np.isnan(grid), axis=0)

    height = 2.6 + 0.32 * len(groups) + 1.3
    fig = Figure(figsize=(15, height), dpi=100)
    top, bottom = 1 - 0.75 / height, 1.25 / height
    gs = fig.add_gridspec(2, 2, height_ratios=[1.6, 0.32 * len(groups)], width_ratios=[1, 0.015],
                          left=0.11, right=0.95, top=top, bottom=bottom, hspace=0.08, wspace=0.02)
    ax_bar = fig.add_subplot(gs[0, 0])
    ax = fig.add_subplot(gs[1, 0], sharex=ax_bar)
    cax = fig.add_subplot(gs[1, 1])
    x = np.arange(len(windows))
    ax_bar.bar(x[has_any], hourly[has_any], color="#2b6a99", width=0.8)
    for xi in x[~has_any]:
        ax_bar.text(xi, 0, "n/r", ha="center", va="bottom", fontsize=7, color="#888888")
    ax_bar.set_ylabel("all released\ngroups (sum)", fontsize=9)
    ax_bar.tick_params(labelbottom=False)
    ax_bar.grid(axis="y", alpha=0.3)
    ax_bar.spines[["top", "right"]].set_visible(False)

    cmap = mpl.colormaps["YlOrRd"].with_extremes(bad="#e6e6e6")
    masked = np.ma.masked_invalid(grid)
    im = ax.imshow(masked, aspect="auto", cmap=cmap, interpolation="nearest",
                   vmin=0, vmax=float(np.nanmax(grid)), extent=(-0.5, len(windows) - 0.5, len(groups) - 0.5, -0.5))
    ax.set_yticks(range(len(groups)), [f"{b}  {g}" for b, g in groups], fontsize=8.5)
    ax.set_xticks(x, labels, fontsize=8.5)
    ax.set_xlabel("hour of day (UTC), window start" if window_minutes == 60 else "window start (UTC)")
    ax.set_xticks(np.arange(-0.5, len(windows)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(groups)), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    if len(windows) <= 48:
        vmax = float(np.nanmax(grid))
        for (r, c), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=6.5,
                        color="white" if v > 0.6 * vmax else "black")
    fig.colorbar(im, cax=cax).set_label("sum of released groups", fontsize=8)
    fig.suptitle(title, fontsize=13, fontweight="bold", x=0.02, ha="left")
    fig.text(0.02, 1 - 0.55 / height, "Grey / n/r = no released row (suppressed or nobody): unknown, not zero.",
             fontsize=9, color="#444444")
    fig.text(0.02, 0.1 / height, caption, fontsize=7.5, color="#444444", va="bottom")
    return _png(fig)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()
