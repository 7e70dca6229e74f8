"""The rule language and the SQL guard, on DuckDB with real Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.analytics.athena import literal
from functions.analytics.engine import (
    Input,
    derived_rows,
    evaluate,
    evaluate_files,
    guard_tables,
    result_columns,
    run,
    sandbox,
    single_select,
)
from functions.analytics.models import AlertRule, AlertRuleCreate
from functions.analytics.scope import ReadScope
from functions.core.errors import InvalidRequest
from functions.sharing.models import RowFilter

START = dt.datetime(2026, 11, 4, 0, 0, tzinfo=dt.UTC)


def parquet(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


AIR = pa.schema(
    [
        ("station_id", pa.string()),
        ("district", pa.string()),
        ("measured_at", pa.timestamp("us", tz="UTC")),
        ("pm25", pa.float64()),
    ]
)
FLOW = pa.schema([("segment_id", pa.string()), ("measured_at", pa.timestamp("us", tz="UTC")), ("avg_speed_kmh", pa.float64())])
REQUESTS = pa.schema([("district", pa.string()), ("opened_at", pa.timestamp("us", tz="UTC"))])


def rule(**values: Any) -> AlertRule:
    created = AlertRuleCreate.model_validate(values)
    return AlertRule(
        **created.model_dump(), rule_id="x" * 25, dataset_id="d", owner="environment", created_by="p", created_at="t"
    )


def hourly_pm25() -> AlertRule:
    return rule(
        name="PM2.5 hourly mean above 75",
        measure={"aggregate": "mean", "column": "pm25"},
        group_by=["station_id"],
        window={"column": "measured_at", "minutes": 60},
        comparison="gt",
        threshold=75,
    )


def congestion() -> AlertRule:
    return rule(
        name="Congested segment",
        measure={"aggregate": "mean", "column": "avg_speed_kmh"},
        group_by=["segment_id"],
        window={"column": "measured_at", "minutes": 5},
        comparison="lt",
        threshold=10,
        consecutive=3,
    )


def air_rows() -> list[dict[str, Any]]:
    rows = []
    for minute in range(0, 180, 10):
        moment = START + dt.timedelta(minutes=minute)
        rows.append(
            {"station_id": "AQ-1", "district": "Centre", "measured_at": moment, "pm25": 90.0 if 60 <= minute < 120 else 20.0}
        )
        rows.append({"station_id": "AQ-2", "district": "Harbour", "measured_at": moment, "pm25": 30.0})
    return rows


def test_hourly_mean_per_station_above_a_threshold(tmp_path: Path) -> None:
    files = [parquet(tmp_path / "air.parquet", air_rows(), AIR)]
    hourly = hourly_pm25()
    with sandbox([Input("data", ReadScope("air", ["station_id", "district", "measured_at", "pm25"]), files)]) as db:
        firings = evaluate(db, hourly)
    assert [(f.group, f.window_start, f.value, f.threshold) for f in firings] == [
        ({"station_id": "AQ-1"}, "2026-11-04T01:00:00Z", 90.0, 75.0)
    ]


def test_three_slow_windows_in_a_row_fire_once_per_streak_end(tmp_path: Path) -> None:
    speeds = [30, 8, 7, 9, 6, 40, 5, 5]  # windows 1-4 slow (fires at 3 and 4), 6-7 slow (only 2)
    rows = [
        {"segment_id": "S-1", "measured_at": START + dt.timedelta(minutes=5 * i), "avg_speed_kmh": float(s)}
        for i, s in enumerate(speeds)
    ]
    rows.append({"segment_id": "S-2", "measured_at": START, "avg_speed_kmh": 5.0})  # one slow window only
    files = [parquet(tmp_path / "flow.parquet", rows, FLOW)]
    slow = congestion()
    with sandbox([Input("data", ReadScope("flow", ["segment_id", "measured_at", "avg_speed_kmh"]), files)]) as db:
        firings = evaluate(db, slow)
    assert [f.window_start for f in firings] == ["2026-11-04T00:15:00Z", "2026-11-04T00:20:00Z"]


def test_a_gap_in_time_breaks_a_streak(tmp_path: Path) -> None:
    rows = [
        {"segment_id": "S-1", "measured_at": START + dt.timedelta(minutes=minutes), "avg_speed_kmh": 5.0}
        for minutes in (0, 5, 30)  # three slow windows, but not consecutive in time
    ]
    files = [parquet(tmp_path / "flow.parquet", rows, FLOW)]
    slow = congestion()
    with sandbox([Input("data", ReadScope("flow", ["segment_id", "measured_at", "avg_speed_kmh"]), files)]) as db:
        assert evaluate(db, slow) == []


def test_count_per_district_above_twice_its_median(tmp_path: Path) -> None:
    rows = []
    for day in range(29):
        count = 30 if day == 28 else 10 + day % 3
        for n in range(count):
            rows.append({"district": "North", "opened_at": START + dt.timedelta(days=day, minutes=n)})
        rows.append({"district": "Centre", "opened_at": START + dt.timedelta(days=day)})
    files = [parquet(tmp_path / "requests.parquet", rows, REQUESTS)]
    surge = rule(
        name="Service requests surge",
        measure={"aggregate": "count"},
        group_by=["district"],
        window={"column": "opened_at", "minutes": 1440},
        comparison="gt",
        baseline={"statistic": "median", "windows": 28, "factor": 2},
    )
    with sandbox([Input("data", ReadScope("requests", ["district", "opened_at"]), files)]) as db:
        firings = evaluate(db, surge)
    assert [(f.group["district"], f.window_start, f.value, f.threshold) for f in firings] == [
        ("North", "2026-12-02T00:00:00Z", 30.0, 22.0)
    ]


def test_a_rule_sees_only_the_rows_its_grant_allows(tmp_path: Path) -> None:
    files = [parquet(tmp_path / "air.parquet", air_rows(), AIR)]
    only_harbour = RowFilter.model_validate({"condition": {"column": "district", "op": "eq", "value": "Harbour"}})
    scope = ReadScope("air", ["station_id", "measured_at", "pm25", "district"], only_harbour)
    hourly = hourly_pm25()
    with sandbox([Input("data", scope, files)]) as db:
        assert evaluate(db, hourly) == []
        assert run(db, "SELECT DISTINCT district FROM data") == [("Harbour",)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "DELETE FROM air",
        "CREATE TABLE x AS SELECT 1",
        "COPY air TO 'x.csv'",
        "ATTACH 'x.db'",
        "PRAGMA version",
        "SELEC district FROM air",
    ],
)
def test_only_one_select_statement_is_accepted(sql: str) -> None:
    with pytest.raises(InvalidRequest):
        single_select(sql)


def test_a_query_touching_a_column_or_dataset_outside_the_grant_is_refused_before_it_runs(tmp_path: Path) -> None:
    granted = ReadScope("air", ["district", "pm25"], column_types={"district": "VARCHAR", "pm25": "DOUBLE"})
    with sandbox([Input("air", granted, [])]) as db:
        assert result_columns(db, "SELECT district, avg(pm25) AS pm25 FROM air GROUP BY district") == {
            "district": "VARCHAR",
            "pm25": "DOUBLE",
        }
        for outside in (
            "SELECT station_id FROM air",  # a column the grant leaves out
            "SELECT * FROM hospital_beds",  # a dataset not granted
            "SELECT * FROM read_parquet('/etc/passwd')",  # files
            "SELECT * FROM read_csv('https://example.com/x.csv')",  # network
        ):
            with pytest.raises(InvalidRequest):
                result_columns(db, outside)


def test_derived_rows_come_back_with_iso_times(tmp_path: Path) -> None:
    files = [parquet(tmp_path / "air.parquet", air_rows(), AIR)]
    scope = ReadScope("air", ["district", "measured_at", "pm25"])
    sql = (
        "SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour, avg(pm25) AS pm25 FROM air GROUP BY ALL ORDER BY ALL"
    )
    with sandbox([Input("air", scope, files)]) as db:
        columns = result_columns(db, sql)
        rows = derived_rows(db, sql, columns)
    assert columns["hour"] == "TIMESTAMP WITH TIME ZONE"
    assert rows[0] == ("Centre", "2026-11-04T00:00:00Z", 20.0) and len(rows) == 6


def test_a_rule_over_files_sees_only_its_scope_and_matches_the_sandbox(tmp_path: Path) -> None:
    files = [parquet(tmp_path / "air.parquet", air_rows(), AIR)]
    hourly = hourly_pm25()
    everything = ReadScope("air", ["station_id", "district", "measured_at", "pm25"])
    only_harbour = ReadScope(
        "air", everything.columns, RowFilter.model_validate({"condition": {"column": "district", "op": "eq", "value": "Harbour"}})
    )
    with sandbox([Input("data", everything, files)]) as db:
        in_sandbox = evaluate(db, hourly)
    assert evaluate_files(hourly, Input("data", everything, files)) == in_sandbox and in_sandbox
    assert evaluate_files(hourly, Input("data", only_harbour, files)) == []


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("SELECT district FROM air_quality", None),
        ("WITH hourly AS (SELECT * FROM air_quality) SELECT * FROM hourly JOIN traffic_flow USING (district)", None),
        ("SELECT * FROM air_quality WHERE district IN (SELECT district FROM hospital_beds)", "hospital_beds"),
        ("SELECT * FROM cityshare_prod_curated.air_quality__v3", "schema"),
        ("SELECT * FROM read_parquet('s3://bucket/curated/x.parquet')", "table functions"),
        ("SELECT * FROM air_quality, plate_reads", "plate_reads"),
    ],
)
def test_the_table_guard_allows_the_inputs_and_the_querys_own_ctes_only(sql: str, refused: str | None) -> None:
    if refused is None:
        guard_tables(sql, {"air_quality", "traffic_flow"})
        return
    with pytest.raises(InvalidRequest, match=refused):
        guard_tables(sql, {"air_quality", "traffic_flow"})


def test_athena_literals_are_escaped_and_temporal_values_typed() -> None:
    assert literal("O'Brien'; DROP TABLE x; --") == "'O''Brien''; DROP TABLE x; --'"
    assert literal(3) == "3" and literal(2.5) == "2.5" and literal(True) == "TRUE"
    assert literal("2026-11-01T00:00:00Z", temporal=True) == "from_iso8601_timestamp('2026-11-01T00:00:00Z')"


def test_the_sandbox_never_fetches_an_extension() -> None:
    """DuckDB installs a known extension on first use by default (a download at run time); here it is
    neither installed nor loaded, whatever the query names."""
    with sandbox([]) as db:
        assert db.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone() == (False,)
        assert db.execute("SELECT current_setting('autoload_known_extensions')").fetchone() == (False,)
        for naming_httpfs in ("SELECT current_setting('s3_secret_access_key')", "SELECT * FROM read_parquet('s3://b/k')"):
            with pytest.raises(duckdb.Error):
                db.execute(naming_httpfs)
