"""The buyers' map report of one date: an offline HTML page and a PNG of the peak hour.

    python -m jobs.report --conf conf/local.yaml --date 2026-10-05

read the release (``mobility.release.read_release``, never a curated table) -> the
released rows of the date to pandas (already aggregated and small) -> page and PNG
(``reporting.maps``) -> ``<lake.reports>/buyers/<date>/map.html`` and ``peak_hour.png``.
"""

from __future__ import annotations

import datetime as dt
import sys

import pandas as pd

from contract.errors import ValidationError
from mobility.release import read_release
from mobility.runner import Context, run_job
from reporting.labels import release_policy
from reporting.maps import map_page, map_payload, peak_png
from reporting.output import report_dir, write_bytes
from transforms.buyers import with_window_label


def released_resolution(values: pd.Series, what: str) -> int | None:
    """The one H3 resolution the released rows of the date use (None when there are no rows)."""
    found = sorted(int(v) for v in values.unique())
    if len(found) > 1:
        raise ValidationError(f"{what} of the date mixes H3 resolutions {found}; the report needs one")
    return found[0] if found else None


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    release = read_release(spark, cfg.lake, date)
    footfall = (release["footfall"].transform(with_window_label)
                .select("window", "h3_cell", "h3_resolution", "age_band", "gender", "visitors").toPandas())
    presence = (release["presence"].transform(with_window_label)
                .select("window", "h3_cell", "h3_resolution", "visitors", "population_estimate").toPandas())
    od_flows = (release["od_flows"].transform(with_window_label)
                .select("window", "origin_h3", "destination_h3", "h3_resolution", "age_band", "gender", "trips")
                .toPandas())
    # The released rows of one date are few (aggregated, k-suppressed): pandas from here on.
    resolution = released_resolution(pd.concat([footfall["h3_resolution"], presence["h3_resolution"]]),
                                     "footfall/presence")
    od_resolution = released_resolution(od_flows["h3_resolution"], "od_flows")

    policy = release_policy(cfg.privacy, cfg)
    payload = map_payload(footfall, presence, od_flows, date=date, policy=policy,
                          resolution=resolution if resolution is not None else cfg.generalization.h3_resolution,
                          od_resolution=od_resolution if od_resolution is not None
                          else cfg.generalization.od_h3_resolution,
                          window_minutes=cfg.generalization.window_minutes)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page_uri = report_dir(cfg.lake.reports, date.isoformat(), "map.html")
    write_bytes(spark, page_uri, map_page(payload, generated=generated).encode("utf-8"))
    ctx.summary.update({"footfall_rows": len(footfall), "presence_rows": len(presence),
                        "od_flows_rows": len(od_flows), "map": page_uri})
    if footfall.empty:
        ctx.summary["peak_hour_png"] = "none: no released footfall on this date"
        return
    png_uri = report_dir(cfg.lake.reports, date.isoformat(), "peak_hour.png")
    write_bytes(spark, png_uri, peak_png(payload))
    ctx.summary["peak_window"] = payload["windows"][payload["peak_window"]]
    ctx.summary["peak_hour_png"] = png_uri


def main(argv: list[str] | None = None) -> int:
    return run_job("report", argv, stage)


if __name__ == "__main__":
    sys.exit(main())
