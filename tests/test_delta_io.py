"""The cheap Delta metadata reads the publisher relies on agree with Delta's own API."""

from __future__ import annotations

import datetime as dt

from delta.tables import DeltaTable

from mobility.io import delta_version, write_date
from mobility.lifecycle import prepare_table, set_properties, table_properties


def test_delta_version_is_the_newest_commit_and_none_without_a_table(spark, tmp_path):
    path = str(tmp_path / "t")
    assert delta_version(spark, path) is None
    day = dt.date(2026, 10, 5)
    frame = spark.createDataFrame([(1, day)], "n long, date date")
    prepare_table(spark, path, frame.schema, {"delta.logRetentionDuration": "interval 30 days"})
    for _ in range(11):  # past the first checkpoint (every 10 commits)
        write_date(frame, path, date=day)
        assert delta_version(spark, path) == DeltaTable.forPath(spark, path).history(1).first()["version"]
    assert delta_version(spark, path) == 11


def test_table_properties_are_read_from_the_metadata_and_set_once(spark, tmp_path):
    path = str(tmp_path / "t")
    frame = spark.createDataFrame([(1, dt.date(2026, 10, 5))], "n long, date date")
    prepare_table(spark, path, frame.schema, {"delta.logRetentionDuration": "interval 30 days"})
    props = table_properties(spark, path)
    assert props["delta.logRetentionDuration"] == "interval 30 days"
    detail = dict(DeltaTable.forPath(spark, path).detail().first()["properties"])
    protocol = {k for k in props if k.startswith(("delta.minReader", "delta.minWriter", "delta.feature."))}
    assert {k: v for k, v in props.items() if k not in protocol} == detail  # the same, plus the protocol
    assert set_properties(spark, path, {"delta.logRetentionDuration": "interval 30 days"}) is False
    assert set_properties(spark, path, {"delta.logRetentionDuration": "interval 7 days"}) is True
    assert table_properties(spark, path)["delta.logRetentionDuration"] == "interval 7 days"
