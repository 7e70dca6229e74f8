"""Forecast rules on DuckDB with real Parquet files: the SQL model against an independent reading of
its definition in Python, the firing ahead of a predicted crossing, the backtest's accounting and
skill, and the rule's terms."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from cityshare.generators import generate
from functions.analytics import engine
from functions.analytics.engine import Input, backtest_files, connect, evaluate_files, run, source_cte
from functions.analytics.forecast import PHI_LIMIT, _fitted
from functions.analytics.models import AlertRule, AlertRuleCreate
from functions.analytics.scope import ReadScope
from functions.core.errors import InvalidRequest, QueryFailed

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def forecast_rule(threshold: float = 75, **forecast: Any) -> AlertRule:
    created = AlertRuleCreate.model_validate(
        {
            "name": "PM2.5 forecast above the limit",
            "measure": {"aggregate": "mean", "column": "pm25"},
            "group_by": ["station_id"],
            "window": {"column": "measured_at", "minutes": 60},
            "comparison": "gt",
            "threshold": threshold,
            "forecast": {"horizon": 6, **forecast},
        }
    )
    return AlertRule(
        **created.model_dump(), rule_id="x" * 25, dataset_id="air", owner="environment", created_by="p", created_at="t"
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Input:
    """Five weeks and 22 hours of four stations (air-quality-history): it ends at 03:00, four hours
    before a working day's rush, when AQ-001's mornings pass 75."""
    folder = tmp_path_factory.mktemp("history")
    csv = generate("air-quality-history", 4 * 862, folder / "air.csv")
    path = folder / "air.parquet"
    pq.write_table(pacsv.read_csv(csv), path)
    return Input("air", ReadScope("air", pq.read_schema(path).names), [path], version=4)


def reference_forecasts(
    values: dict[int, float], last: int, horizon: int, season: int, seasons: int
) -> list[tuple[float, float]]:
    """The model as its docstring states it, for one series: (forecast, sd) for k = 1..horizon."""

    def profile(n: int) -> float | None:
        found = [values[n - j * season] for j in range(1, seasons + 1) if n - j * season in values]
        return sum(found) / len(found) if found else None

    residual = {n: v - p for n, v in values.items() if (p := profile(n)) is not None}
    window = [n for n in residual if last - seasons * season <= n <= last]
    pairs = [(residual[n], residual[n - 1]) for n in window if n - 1 in residual]
    below = sum(b * b for _, b in pairs)
    phi = max(-PHI_LIMIT, min(PHI_LIMIT, sum(a * b for a, b in pairs) / below if below else 0.0))
    mean = sum(residual[n] for n in window) / len(window)
    variance = sum((residual[n] - mean) ** 2 for n in window) / (len(window) - 1)
    out = []
    for k in range(1, horizon + 1):
        ahead = profile(last + k)
        assert ahead is not None
        out.append((ahead + phi**k * residual[last], math.sqrt(variance * (1 - phi ** (2 * k)))))
    return out


def test_the_sql_model_is_the_model_it_states(tmp_path: Path) -> None:
    rng = random.Random(4)
    rows = []
    for hour in range(24 * 7 * 3 + 5):
        if hour % 97 == 13:  # a few windows missing
            continue
        moment = START + timedelta(hours=hour)
        pm25 = 20 + 15 * math.sin(moment.hour / 24 * 2 * math.pi) + (8 if moment.weekday() < 5 else 0) + rng.gauss(0, 4)
        rows.append({"station_id": "AQ-1", "measured_at": moment, "pm25": pm25})
    path = tmp_path / "air.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    rule = forecast_rule(history=2, horizon=8)
    source = Input("air", ReadScope("air", ["station_id", "measured_at", "pm25"]), [path])
    fitted, params = _fitted(rule, "air", source_cte(source), latest_only=True)
    connection = connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        found = connection.execute(
            fitted + ' SELECT "cs:forecast", "cs:sd" FROM "cs:forecasts" ORDER BY "cs:k"', params
        ).fetchall()
    finally:
        connection.close()
    values = {int(r["measured_at"].timestamp()) // 3600: r["pm25"] for r in rows}
    expected = reference_forecasts(values, max(values), 8, 168, 2)
    assert [f for f, _ in found] == pytest.approx([f for f, _ in expected], rel=1e-9)
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], rel=1e-9)


def test_a_forecast_rule_fires_hours_before_the_crossing_it_predicts(history: Input) -> None:
    firings = evaluate_files(forecast_rule(), history)
    assert [f.group for f in firings] == [{"station_id": "AQ-001"}]
    [firing] = firings
    assert firing.window_start is not None and firing.window_start.endswith("T07:00:00Z")
    assert firing.forecast is not None and firing.forecast.last_observed.endswith("T03:00:00Z")
    assert firing.forecast.lead_minutes == 240
    assert firing.forecast.lower < 75 < firing.value < firing.forecast.upper and firing.threshold == 75
    # Three hours ahead sees only the night: nothing fires. The interval's bound fires earlier.
    assert evaluate_files(forecast_rule(horizon=3), history) == []
    assert evaluate_files(forecast_rule(horizon=3, trigger="interval", level=0.999), history) == []
    wider = evaluate_files(forecast_rule(threshold=85, trigger="interval"), history)
    assert [f.group for f in wider] == [{"station_id": "AQ-001"}] and wider[0].forecast is not None
    assert wider[0].forecast.upper > 85


def test_the_backtest_scores_every_origin_of_the_history(history: Input) -> None:
    backtest = backtest_files(forecast_rule(), history)
    assert backtest.history_version == 4
    assert backtest.hits + backtest.misses == backtest.events > 10  # the busy station's working mornings
    assert backtest.hit_rate is not None and backtest.hit_rate > 0.8
    assert 0 < backtest.false_alarms < backtest.alarms < backtest.origins
    assert backtest.mase is not None and backtest.mase < 1  # better than the seasonal-naive forecast
    assert backtest.mean_lead_minutes is not None and 60 <= backtest.mean_lead_minutes <= 360
    never = backtest_files(forecast_rule(threshold=1000), history)
    assert (never.events, never.alarms, never.hit_rate, never.false_alarm_ratio) == (0, 0, None, None)
    assert never.mase == backtest.mase  # the skill does not depend on the threshold


def test_a_forecast_over_its_time_budget_is_a_timeout_not_a_firing(history: Input, monkeypatch: pytest.MonkeyPatch) -> None:
    # A query over its time is interrupted and said so; one that fails on the data is a QueryFailed.
    db = connect()
    try:
        with pytest.raises(TimeoutError):
            run(db, "SELECT count(*) FROM range(100000000000) AS t(x) WHERE x % 7 = 3", seconds=0.05)
        with pytest.raises(QueryFailed, match="Could not convert"):
            run(db, "SELECT CAST('x' AS INTEGER)")
    finally:
        db.close()

    def over_time(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("the query took more than 1 seconds")

    monkeypatch.setattr(engine, "run", over_time)
    with pytest.raises(TimeoutError):
        evaluate_files(forecast_rule(max_seconds=1), history)
    with pytest.raises(InvalidRequest, match="did not finish within its 1 seconds"):
        backtest_files(forecast_rule(max_seconds=1), history)


def test_stale_groups_forecast_nothing_already_past_and_alarms_are_scored_only_when_checkable(tmp_path: Path) -> None:
    rows = []
    for hour in range(24 * 7 * 3):
        moment = START + timedelta(hours=hour)
        level = 90.0 if moment.hour == 8 else 20.0  # the same day every day: a perfect forecast
        rows.append({"station_id": "LIVE", "measured_at": moment, "pm25": level})
        if hour < 24 * 7 * 2 + 4:  # this one stopped a week ago, at 04:00, before its 08:00 peak
            rows.append({"station_id": "GONE", "measured_at": moment, "pm25": level})
    rows.append({"station_id": "LIVE", "measured_at": datetime(1970, 1, 2, tzinfo=UTC), "pm25": 1.0})  # a stray reading
    path = tmp_path / "air.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    source = Input("air", ReadScope("air", ["station_id", "measured_at", "pm25"]), [path], version=1)
    rule = forecast_rule(threshold=50, season="day", horizon=8)
    assert evaluate_files(rule, source) == []  # GONE's 08:00 is a week past; LIVE ends at 23:00
    backtest = backtest_files(rule, source)
    assert backtest.false_alarms == 0 and backtest.hits == backtest.events > 0  # a perfect forecast, checkably


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": None}, "a window and a threshold"),
        ({"threshold": None, "baseline": {"windows": 4, "factor": 2}}, "a window and a threshold"),
        ({"consecutive": 2}, "no consecutive windows"),
        ({"window": {"column": "measured_at", "minutes": 11}}, "divides its season"),
        ({"forecast": {"horizon": 25, "season": "day"}}, "at most one season ahead"),
        ({"forecast": {"horizon": 6, "max_seconds": 60}}, "less than or equal to 20"),
    ],
)
def test_forecast_terms_are_checked(changes: dict[str, Any], message: str) -> None:
    body = {
        "name": "Forecast",
        "measure": {"aggregate": "mean", "column": "pm25"},
        "window": {"column": "measured_at", "minutes": 60},
        "comparison": "gt",
        "threshold": 75,
        "forecast": {"horizon": 6},
        **changes,
    }
    with pytest.raises(ValidationError, match=message):
        AlertRuleCreate.model_validate(body)


def test_athenas_windows_give_what_the_rows_give_with_empty_and_null_groups_apart(tmp_path: Path) -> None:
    """engine athena: the fit on Athena's result file (text; NULL an unquoted empty field, an empty
    text a quoted one) equals the fit on the rows, a group named "" and a group without a name kept apart."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from functions.analytics.athena import _athena_csv
    from functions.analytics.engine import Input, backtest_files, backtest_series, evaluate_files, evaluate_series
    from functions.analytics.forecast import series_sql
    from functions.analytics.models import AlertRule
    from functions.analytics.scope import ReadScope
    from tests.forecast_data import daily_peaks, forecast_rule

    readings = [
        dict(row, station_id={"AQ-1": "", "AQ-2": None}[row["station_id"]], pm25=row["pm25"] + 5 * (row["station_id"] == "AQ-1"))
        for row in daily_peaks()
    ] + [dict(row, station_id="AQ-3") for row in daily_peaks() if row["station_id"] == "AQ-1"]
    rows = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(readings), rows)
    rule = AlertRule.model_validate(
        {**forecast_rule(12), "rule_id": "x" * 25, "dataset_id": "d", "owner": "o", "created_by": "p", "created_at": "t"}
    )
    source = Input("data", ReadScope("d", ["station_id", "district", "measured_at", "pm25"]), [rows], 1)
    reduction = series_sql(rule, "data").replace('FROM "data"', f"FROM read_parquet('{rows}')")
    windows = tmp_path / "windows.csv"
    with windows.open("w") as out:  # as Athena writes its result file
        out.write('"station_id","cs:n","cs:value"\n')
        for station, n, value in duckdb.sql(reduction).fetchall():
            out.write(",".join(_athena_csv(None if v is None else str(v)) for v in (station, n, value)) + "\n")
    types = {"station_id": "VARCHAR"}
    assert backtest_series(rule, windows, types, 1) == backtest_files(rule, source)
    on_rows = [(f.group, f.window_start, f.value) for f in evaluate_files(rule, source)]
    assert [(f.group, f.window_start, f.value) for f in evaluate_series(rule, windows, types)] == on_rows
    assert {f[0]["station_id"] for f in on_rows} == {"", None, "AQ-3"}
