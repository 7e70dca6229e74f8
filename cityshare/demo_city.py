"""The demo's last chapter: city management's picture of the city, built from what four other
departments share with it: indicators by district on a map and over time, and its alerts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from cityshare.client import CityShareClient
from cityshare.examples import CITY_INDICATORS
from cityshare.generators import generate

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "datasets"
Departments = dict[str, dict[str, CityShareClient]]
# (owner, dataset, classification, tags, rows): the datasets this chapter adds to the city.
CITY_DATASETS = [
    ("city-management", "district-boundaries", "public", ["boundaries", "geography"], 8),
    ("environment", "building-energy", "internal", ["energy", "buildings"], 40 * 48),
    ("logistics", "waste-collection", "internal", ["waste", "logistics"], 16 * 48),
]
# What each owner grants city management for its picture: (owner, dataset, purpose, terms).
CITY_GRANTS = [
    (
        "transport",
        "traffic-flow",
        "Congestion by district for the city's picture",
        {"columns": ["district", "measured_at", "avg_speed_kmh"]},
    ),
    ("health", "hospital-beds", "Bed occupancy across the city's hospitals for the city's picture", {}),
    ("environment", "building-energy", "Energy use of public buildings by district", {}),
    ("logistics", "waste-collection", "Waste collected and bins missed by district", {}),
]
AIR_BY_DISTRICT_RULE: dict[str, Any] = {
    "name": "PM2.5 above 50 at a station of a district in an hour",
    "measure": {"aggregate": "max", "column": "pm25"},
    "group_by": ["district"],
    "window": {"column": "measured_at", "minutes": 60},
    "comparison": "gt",
    "threshold": 50,
}


def city_picture(people: Departments, folder: Path, console: Console) -> dict[str, Any]:
    console.rule("7. The city picture: city management's indicators, built only from what it is granted")
    city = people["city-management"]
    for owner, dataset_id, classification, tags, rows in CITY_DATASETS:
        schema = json.loads((SCHEMAS / f"{dataset_id}.json").read_text())
        member = people[owner]["member"]
        member.create_dataset(dataset_id, schema["title"], classification, schema, description=schema["description"], tags=tags)
        source = generate(dataset_id, rows, folder / f"{dataset_id}.jsonl")
        member.wait_for_upload(dataset_id, member.upload_file(dataset_id, source)["upload_id"])
        console.print(f"  {owner} publishes [bold]{dataset_id}[/bold] ({classification}, {rows} rows)")
    for owner, dataset_id, purpose, terms in CITY_GRANTS:
        people[owner]["steward"].grant(dataset_id, "city-management", purpose, "planning", terms=terms)
        narrowed = f" (columns {terms['columns']})" if terms.get("columns") else ""
        console.print(f"  {owner}'s steward grants city management {dataset_id}{narrowed}")
    for definition in CITY_INDICATORS:
        city["member"].define_derived_dataset(
            definition["dataset_id"],
            definition["title"],
            definition["inputs"],
            definition["sql"],
            indicator=definition["indicator"],
        )
    console.print(f"  city management defines {len(CITY_INDICATORS)} indicators as derived datasets (schemas/examples/city/)")
    city["member"].define_alert_rule("air-quality", AIR_BY_DISTRICT_RULE)
    console.print(f"  city management's rule on environment's public air-quality: '{AIR_BY_DISTRICT_RULE['name']}'")
    environment = people["environment"]["member"]
    spike = generate("air-quality", 24 * 8, folder / "air-quality-city.csv", seed=13, spike=True)
    environment.wait_for_upload("air-quality", environment.upload_file("air-quality", spike)["upload_id"])
    console.print("  environment's network reports a polluted morning (a new air-quality version)")

    picture = _built(city["member"], len(CITY_INDICATORS))
    from cityshare.cli import print_city  # the CLI's own rendering: `cityshare city` shows the same

    print_city(picture, console)
    return {
        "indicators": sorted(i["title"] for i in picture["indicators"] if i.get("city") is not None),
        "districts_on_map": len((picture.get("boundaries") or {}).get("districts", {})),
        "open_alerts": sum(rule["open"] for rule in picture["alerts"]),
        "granted_sources": sorted({s["dataset_id"] for i in picture["indicators"] for s in i["sources"] if s["grant_id"]}),
    }


def _built(member: CityShareClient, indicators: int, timeout: float = 90.0) -> dict[str, Any]:
    """The picture once every indicator has a version and the rule's alerts are in (derived datasets
    are built by the triggers function, within seconds on the embedded stack)."""
    deadline = time.monotonic() + timeout
    picture = member.city_picture()
    while time.monotonic() < deadline:
        built = [i for i in picture["indicators"] if i.get("version")]
        if len(built) == indicators and any(rule["raised"] for rule in picture["alerts"]):
            break
        time.sleep(1)
        picture = member.city_picture()
    return picture
