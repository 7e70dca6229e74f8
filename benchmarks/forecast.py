"""Figures of forecast rules (issue: Analytics that look ahead and in space), same run, this machine:

1. a generated series with daily and weekly seasonality (`air-quality-history`: one year of hourly
   PM2.5 for 50 stations, rush hours on working days, lingering weather, episodes): the backtest's
   time (target: at most 10 s), its MASE against the seasonal-naive forecast (target: below 1), and
   the hit rate and false-alarm ratio at the demo's threshold (PM2.5 above 75 within 6 hours);
2. a real public series: NOAA's hourly temperatures in Seattle, 2010 (`seattle-temps`, bundled in
   the vega_datasets wheel: nothing is downloaded): MASE, and the hit rate and false-alarm ratio
   of "above 75 °F within the next 6 hours";
3. one fit of the year's 50 stations as a rule evaluates a new version (the forecasts from the last
   window), and, for a rule whose windows Athena reduces (engine athena), the backtest's time on
   those windows as Athena answers them (a CSV of text), which must give the same backtest.
The backtest runs each rule at every window of the history (see functions/analytics/forecast.py).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityshare.generators import generate
from functions.analytics.engine import Input, backtest_files, backtest_series, evaluate_files
from functions.analytics.forecast import series_sql
from functions.analytics.models import AlertRule, AlertRuleCreate, Backtest
from functions.analytics.scope import ReadScope

STATIONS, HOURS = 50, 8760


def rule(column: str, group_by: list[str], threshold: float, season: str) -> AlertRule:
    created = AlertRuleCreate.model_validate(
        {
            "name": f"{column} forecast above {threshold:g} within 6 hours",
            "measure": {"aggregate": "mean", "column": column},
            "group_by": group_by,
            "window": {"column": "measured_at", "minutes": 60},
            "comparison": "gt",
            "threshold": threshold,
            "forecast": {"horizon": 6, "season": season, "max_seconds": 20},
        }
    )
    return AlertRule(**created.model_dump(), rule_id="x" * 25, dataset_id="d", owner="o", created_by="p", created_at="t")


def timed_backtest(the_rule: AlertRule, source: Input) -> tuple[float, Backtest]:
    start = time.perf_counter()
    backtest = backtest_files(the_rule, source)
    return time.perf_counter() - start, backtest


def show(title: str, seconds: float, backtest: Backtest) -> None:
    print(title)
    print(
        f"  backtest                 {seconds:6.2f} s   "
        f"({backtest.origins:,} origins, {backtest.forecasts_scored:,} forecasts scored)"
    )
    print(f"  MASE vs seasonal naive   {backtest.mase}")
    print(
        f"  events {backtest.events}, hits {backtest.hits}, misses {backtest.misses}: hit rate {backtest.hit_rate}, "
        f"mean lead {backtest.mean_lead_minutes} min"
    )
    print(f"  alarms {backtest.alarms}, false {backtest.false_alarms}: false-alarm ratio {backtest.false_alarm_ratio}")


def seattle(folder: Path) -> Path:
    text = (files("vega_datasets") / "_data" / "seattle-temps.csv").read_text()
    lines = text.strip().splitlines()[1:]
    moments: list[Any] = []
    temps: list[float] = []
    for line in lines:
        stamp, temp = line.split(",")
        moments.append(datetime.strptime(stamp, "%Y/%m/%d %H:%M").replace(tzinfo=UTC))
        temps.append(float(temp))
    path = folder / "seattle.parquet"
    table = pa.table(
        {"station": ["seattle"] * len(temps), "measured_at": pa.array(moments, pa.timestamp("s", tz="UTC")), "temp": temps}
    )
    pq.write_table(table, path)
    return path


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cityshare-forecast-"))
    csv = generate("air-quality-history", STATIONS * HOURS, folder / "air.csv")
    air = folder / "air.parquet"
    pq.write_table(pacsv.read_csv(csv), air)
    columns = pq.read_schema(air).names
    source = Input("air", ReadScope("air", columns), [air], version=1)
    pm25 = rule("pm25", ["station_id"], 75, "week")
    seconds, backtest = timed_backtest(pm25, source)
    show(
        f"generated: {STATIONS} stations x {HOURS:,} hours of PM2.5, above 75 within 6 hours "
        "(target: backtest <= 10 s, MASE < 1)",
        seconds,
        backtest,
    )
    start = time.perf_counter()
    firings = evaluate_files(pm25, source)
    print(
        f"  one fit of every station from its last window (a new version): {time.perf_counter() - start:.2f} s, "
        f"{len(firings)} firing(s)"
    )
    # engine athena: Athena reduces the rows to windows (not run here); the function fits on the
    # windows it answers, a CSV of text, as written here by the same reduction.
    windows = folder / "windows.csv"
    reduction = series_sql(pm25, "data").replace('FROM "data"', f"FROM read_parquet('{air}')")
    duckdb.sql(f"COPY ({reduction}) TO '{windows}' (HEADER, FORCE_QUOTE *)")
    start = time.perf_counter()
    reduced = backtest_series(pm25, windows, {"station_id": "VARCHAR"}, 1)
    print(
        f"  engine athena, the fit's share: backtest on Athena's windows "
        f"({windows.stat().st_size / 1e6:.1f} MB CSV) {time.perf_counter() - start:.2f} s, "
        f"the same backtest: {reduced == backtest}"
    )

    temps = seattle(folder)
    heat = rule("temp", ["station"], 75, "day")
    seconds, backtest = timed_backtest(
        heat, Input("seattle", ReadScope("seattle", ["station", "measured_at", "temp"]), [temps], version=1)
    )
    show(
        "real: NOAA hourly temperatures, Seattle 2010 (vega_datasets), above 75 °F within 6 hours, daily season",
        seconds,
        backtest,
    )


if __name__ == "__main__":
    main()
