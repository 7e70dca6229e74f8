"""The demo's eighth chapter: analytics that look ahead and in space. Health's forecast rule on
environment's hourly air quality is backtested, then warns health hours before a polluted morning;
logistics places its vans' positions in the city's districts to see where traffic is slow."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cityshare.client import CityShareClient
from cityshare.examples import PM25_FORECAST_RULE
from cityshare.generators import generate

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "datasets"
EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "examples"
Departments = dict[str, dict[str, CityShareClient]]
# Five weeks of four stations to 03:00 on a working day (862 hours), then to 10:00 (869 hours).
STATIONS, NIGHT_HOURS, MORNING_HOURS = 4, 862, 869


def look_ahead(people: Departments, folder: Path, console: Console) -> dict[str, Any]:
    from cityshare.cli import forecast_text, print_backtest  # the CLI's own rendering

    console.rule("8. Looking ahead and in space: a forecast warning, congestion by district")
    environment, health = people["environment"]["member"], people["health"]["member"]
    schema = json.loads((SCHEMAS / "air-quality.json").read_text())
    environment.create_dataset(
        "air-quality-hourly", "Air quality, hourly, last five weeks", "internal", schema, tags=["environment", "air"]
    )
    _publish(environment, "air-quality-hourly", folder / "air-history.csv", STATIONS * NIGHT_HOURS, seed=21)
    console.print("  environment publishes air-quality-hourly: five weeks of hourly PM2.5 at four stations")
    people["environment"]["steward"].grant(
        "air-quality-hourly", "health", "Warn the health service of polluted hours ahead of them", "public-health"
    )
    rule = health.define_alert_rule("air-quality-hourly", PM25_FORECAST_RULE)
    console.print(f"  health defines the forecast rule '{rule['name']}', backtested on the history first:")
    print_backtest(rule["backtest"])

    night = _publish(environment, "air-quality-hourly", folder / "air-night.csv", STATIONS * NIGHT_HOURS, seed=22)
    warning = _forecast_alert(health, "air-quality-hourly", night)
    console.print(
        f"  [yellow]warning[/yellow] to health after the night's readings (v{night}): {warning['group']['station_id']} "
        f"PM2.5 forecast {warning['value']:.1f} > {warning['threshold']:g} at {warning['window_start']} "
        f"({forecast_text(warning['forecast'])})"
    )
    notice = _notice(health, "air-quality-hourly", night)
    console.print(f"  [dim]health inbox[/dim] {notice['kind']}: {notice['message']}")
    morning = _publish(
        environment, "air-quality-hourly", folder / "air-morning.csv", STATIONS * MORNING_HOURS, seed=22, spike=True
    )
    measured = _measured(environment, "air-quality-hourly", warning["group"]["station_id"], warning["window_start"])
    console.print(
        f"  the morning's readings (v{morning}): {warning['group']['station_id']} measured {measured:.0f} at "
        f"{warning['window_start']}, {warning['forecast']['lead_minutes'] // 60} hours after the warning"
    )
    return {
        "backtest": rule["backtest"],
        "warning": {"station": warning["group"]["station_id"], "lead_minutes": warning["forecast"]["lead_minutes"]},
        "measured": measured,
        "congestion": congestion_by_district(people, folder, console),
    }


def congestion_by_district(people: Departments, folder: Path, console: Console) -> dict[str, Any]:
    """Logistics' vans report where they are and how fast they go; the city's districts are public
    (city management's district-boundaries): a place join puts each position in its district."""
    logistics = people["logistics"]["member"]
    schema = json.loads((SCHEMAS / "delivery-gps.json").read_text())
    logistics.create_dataset("delivery-gps", schema["title"], "confidential", schema, tags=["logistics", "vehicles"])
    _publish(logistics, "delivery-gps", folder / "delivery-gps.csv", 8000, seed=23)
    definition = json.loads((EXAMPLES / "van-speed-by-district.json").read_text())
    logistics.define_derived_dataset(**definition)
    console.print("  logistics publishes its vans' positions and places them in the city's districts (a place join)")
    deadline = time.monotonic() + 60
    while not logistics.get_dataset(definition["dataset_id"]).get("latest_version") and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = sorted(logistics.read_table(definition["dataset_id"]).to_pylist(), key=lambda r: r["mean_speed_kmh"])
    table = Table("district", "positions", "vans", "mean speed km/h", title="Vans' speed by district (slowest first)")
    for row in rows:
        table.add_row(row["district"], str(row["positions"]), str(row["vans"]), f"{row['mean_speed_kmh']:.1f}")
    console.print(table)
    return {
        "districts": len(rows),
        "positions": sum(r["positions"] for r in rows),
        "slowest": rows[0]["district"] if rows else None,
    }


def _publish(member: CityShareClient, dataset_id: str, path: Path, rows: int, seed: int, spike: bool = False) -> int:
    name = "air-quality-history" if dataset_id == "air-quality-hourly" else dataset_id
    source = generate(name, rows, path, seed=seed, spike=spike)
    done = member.wait_for_upload(dataset_id, member.upload_file(dataset_id, source)["upload_id"])
    return int(done["version"])


def _forecast_alert(member: CityShareClient, dataset_id: str, version: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raised = [a for a in member.alerts(dataset_id) if a["version"] == version and a.get("forecast")]
        if raised:
            return min(raised, key=lambda a: a["window_start"])
        time.sleep(0.3)
    raise RuntimeError(f"no forecast alert on {dataset_id} v{version}")


def _notice(member: CityShareClient, dataset_id: str, version: int, timeout: float = 30.0) -> dict[str, Any]:
    """The alert's notice in the member's inbox (fed asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for note in member.notifications(limit=100)["notifications"]:
            subject = note["subject"]
            if note["kind"] == "alert.raised" and subject.get("dataset_id") == dataset_id and subject.get("version") == version:
                return dict(note)
        time.sleep(0.3)
    raise RuntimeError(f"no alert notice on {dataset_id} v{version} in the inbox")


def _measured(member: CityShareClient, dataset_id: str, station: str, window_start: str) -> float:
    """The hour's mean PM2.5 at the station, as published."""
    table = member.read_table(dataset_id).to_pylist()
    hour = window_start[:13]
    values = [float(r["pm25"]) for r in table if r["station_id"] == station and r["measured_at"].strftime("%Y-%m-%dT%H") == hour]
    return sum(values) / len(values)
