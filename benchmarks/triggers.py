"""Analytics-trigger figures (issue: Analytics triggers), this machine:

- rule evaluation over a 1,000,000-row air-quality version (hourly mean of pm25 per station above 75)
  against a bare DuckDB query computing the same aggregate on the same Parquet file in the same run
  (target ratio <= 1.3), median of 5;
- time from upload complete (the file's PUT answered) to AlertRaised (the alert in the rule owner's
  inbox) in the embedded stack, for a 100,000-row version with a pollution spike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityshare.examples import PM25_HOURLY_RULE
from cityshare.generators import generate
from functions.analytics.engine import Input, evaluate_files
from functions.analytics.models import AlertRule
from functions.analytics.scope import ReadScope

RULE = PM25_HOURLY_RULE
COLUMNS = ["station_id", "district", "measured_at", "pm25", "pm10", "no2", "o3"]
RUNS = 5


def median_seconds(action: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bare(path: Path) -> list[tuple[Any, ...]]:
    connection = duckdb.connect(config={"threads": 2})
    connection.execute("SET TimeZone = 'UTC'")
    rows = connection.execute(
        "SELECT station_id, time_bucket(INTERVAL 60 MINUTE, measured_at) AS w, avg(pm25) AS v "
        "FROM read_parquet(?) WHERE measured_at IS NOT NULL GROUP BY ALL HAVING avg(pm25) > 75",
        [str(path)],
    ).fetchall()
    connection.close()
    return rows


def rule_evaluation(folder: Path) -> None:
    csv = generate("air-quality", 1_000_000, folder / "air.csv", spike=True)
    curated = folder / "air.parquet"
    table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(timestamp_parsers=["%Y-%m-%dT%H:%M:%SZ"]))
    pq.write_table(table, curated, compression="zstd")
    rule = AlertRule.model_validate(
        dict(RULE, rule_id="x" * 25, dataset_id="air-quality", owner="environment", created_by="p", created_at="t")
    )
    source = Input("data", ReadScope("air-quality", COLUMNS), [curated])
    bare_s, bare_rows = median_seconds(lambda: bare(curated))
    rule_s, firings = median_seconds(lambda: evaluate_files(rule, source))
    assert len(firings) == len(bare_rows), (len(firings), len(bare_rows))
    print(f"1,000,000-row version ({curated.stat().st_size / 1e6:.1f} MB Parquet), {len(firings)} firing windows")
    print(f"bare DuckDB aggregate + threshold: {bare_s * 1000:.0f} ms")
    print(f"alert rule evaluation:             {rule_s * 1000:.0f} ms -> ratio {rule_s / bare_s:.2f} (target <= 1.3)")


def upload_to_alert(folder: Path) -> None:
    from cityshare import CityShareClient, Profile
    from cityshare.admin import enrol
    from infra.local.stack import LocalStack
    from tests.datasets import city_schema

    stack = LocalStack(folder / "stack", persistent=False)  # the platform measured; keeping state: benchmarks/local_state.py
    endpoints = stack.start()
    try:
        admin_profile = Profile.load(endpoints.profile_path)
        admin = CityShareClient.from_profile(admin_profile)
        admin.register_department("environment", "Environment")
        sensors = CityShareClient.from_profile(
            enrol(admin, admin_profile, "environment", "sensors", ["member"], folder / "sensors.pem")
        )
        sensors.create_dataset("air-quality", "Air quality", "internal", city_schema("air-quality"))
        sensors.define_alert_rule("air-quality", RULE)
        one_incident = generate("air-quality", 100_000, folder / "air-100k.csv")
        with one_incident.open("a") as handle:  # one morning of pollution at one station
            for hour in (7, 8, 9):
                handle.write(f"AQ-004,Harbour,2027-06-01T{hour:02d}:30:00Z,96.5,130.0,40.0,50.0\n")
        every_morning = generate("air-quality", 100_000, folder / "air-100k-spikes.csv", seed=8, spike=True)
        for version, (path, what) in enumerate(((one_incident, "one incident"), (every_morning, "a spike every morning")), 1):
            sensors.upload_file("air-quality", path)
            sent = time.perf_counter()
            published_at = None
            while True:
                if published_at is None and (sensors.get_dataset("air-quality").get("latest_version") or 0) >= version:
                    published_at = time.perf_counter()
                notes = sensors.notifications(limit=100)["notifications"]
                if any(n["kind"] == "alert.raised" and n["subject"]["version"] == version for n in notes):
                    break
                if time.perf_counter() - sent > 180:
                    raise RuntimeError("no alert within 180 s")
                time.sleep(0.05)
            raised = time.perf_counter()
            firings = len([a for a in sensors.alerts("air-quality") if a["version"] == version])
            print(
                f"100,000-row upload ({what}, {firings} firing windows) complete -> version published "
                f"{((published_at or raised) - sent):.2f} s -> first AlertRaised in the inbox {raised - sent:.2f} s"
            )
    finally:
        stack.stop()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cityshare-triggers-"))
    rule_evaluation(folder)
    upload_to_alert(folder)


if __name__ == "__main__":
    main()
