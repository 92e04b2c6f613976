"""The buyers' store report of one date: visitors per window and target group around each store.

    python -m jobs.store_report --conf conf/local.yaml --date 2026-10-05 --stores conf/demo_stores.csv

check the stores file (a bad row stops the run, naming the store) -> the H3 cells covering
each store (``reporting.cover``, on the small store table) -> the released footfall
(``mobility.release.read_release``, never a curated table) joined to them and summed in
Spark (``transforms.buyers.to_store_visitors``) -> CSV, README.txt and a PNG per store
under ``<lake.reports>/buyers/<date>/stores/``.

Exit codes: 0 written; 1 the stores file is missing, unreadable or has a bad row (one
``error:`` line naming the store), or the release is missing; 2 a config error.
"""

from __future__ import annotations

import sys

import pandas as pd
from pyspark.sql import types as T

from contract.errors import InputError, ValidationError
from mobility.release import read_release
from mobility.runner import Context, run_job
from reporting.cover import StoreFileError, covering_cells, read_stores
from reporting.labels import release_policy
from reporting.output import report_dir, write_bytes
from reporting.stores import STATUS_NO_DATA, readme_text, store_chart_png, store_table, to_csv
from transforms.buyers import to_store_visitors

STORE_CELLS = T.StructType([T.StructField("store_id", T.StringType(), False),
                            T.StructField("h3_cell", T.StringType(), False)])


def add_arguments(parser) -> None:
    parser.add_argument("--stores", required=True,
                        help="CSV of stores: store_id,name,latitude,longitude,radius_m (metres, at most 50 km)")


def stage(ctx: Context) -> None:
    cfg, date, spark = ctx.cfg, ctx.date, ctx.spark
    try:
        stores = read_stores(ctx.args.stores)
    except StoreFileError as exc:
        raise InputError(str(exc)) from None
    ctx.summary["stores"] = len(stores)

    footfall = read_release(spark, cfg.lake, date)["footfall"]
    found = sorted(r[0] for r in footfall.select("h3_resolution").distinct().collect())  # one value, or none
    if len(found) > 1:
        raise ValidationError(f"released footfall of {date} mixes H3 resolutions {found}")
    resolution = found[0] if found else cfg.generalization.h3_resolution

    covers = {s.store_id: covering_cells(s.latitude, s.longitude, s.radius_m, resolution) for s in stores}
    store_cells = spark.createDataFrame([(sid, c) for sid, cells in covers.items() for c in cells], STORE_CELLS)
    sums = to_store_visitors(footfall, store_cells).toPandas()  # a few rows per store, window and group
    released_cells = {r[0] for r in footfall.join(store_cells, on="h3_cell", how="left_semi")
                      .select("h3_cell").distinct().collect()}

    table = store_table(stores, covers, sums, date=date, resolution=resolution)
    policy = release_policy(cfg.privacy, cfg)
    out = report_dir(cfg.lake.reports, date.isoformat(), "stores")
    window_minutes = cfg.generalization.window_minutes
    write_bytes(spark, f"{out}/stores.csv", to_csv(table).encode("utf-8"))
    cells_table = pd.DataFrame([{"store_id": sid, "h3_cell": c, "h3_resolution": resolution,
                                 "has_released_footfall": c in released_cells}
                                for sid, cells in covers.items() for c in cells])
    write_bytes(spark, f"{out}/store_cells.csv", cells_table.to_csv(index=False, lineterminator="\n").encode())
    write_bytes(spark, f"{out}/README.txt", readme_text(date=date, policy=policy, resolution=resolution,
                                                        window_minutes=window_minutes, stores=stores,
                                                        table=table).encode("utf-8"))
    per_store = {}
    for store in stores:
        rows = table[table["store_id"] == store.store_id]
        write_bytes(spark, f"{out}/{store.store_id}.csv", to_csv(rows).encode("utf-8"))
        write_bytes(spark, f"{out}/{store.store_id}.png",
                    store_chart_png(store, rows, date=date, policy=policy, resolution=resolution,
                                    window_minutes=window_minutes, n_cells=len(covers[store.store_id])))
        per_store[store.store_id] = (STATUS_NO_DATA if rows.iloc[0]["status"] == STATUS_NO_DATA
                                     else f"{len(rows)} rows, {len(covers[store.store_id])} cells")
    ctx.summary.update({"h3_resolution": resolution, "per_store": per_store, "output": out})


def main(argv: list[str] | None = None) -> int:
    return run_job("store_report", argv, stage, extra_args=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
