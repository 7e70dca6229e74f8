"""A small city for the city picture's tests: environment shares its air quality with city
management, which publishes the districts' boundaries, defines an indicator over the shared data
and an alert rule; then a polluted morning lands."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cityshare.demo_city import AIR_BY_DISTRICT_RULE
from cityshare.generators import generate
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import city_schema

AIR_BY_DISTRICT = "SELECT district, date_trunc('hour', measured_at) AS hour, avg(pm25) AS mean_pm25 FROM {table} GROUP BY ALL"
RULE = AIR_BY_DISTRICT_RULE  # the demo's: PM2.5 above 50 at a station of a district in an hour


@dataclass
class City:
    environment: Member
    environment_steward: Member
    city: Member
    city_steward: Member
    air: str  # environment's air-quality dataset
    indicator: str  # city management's derived dataset
    boundaries: str
    grant_id: str
    spike: Path  # the polluted morning's file (the latest version)


def build_city(stack: RunningStack, folder: Path) -> City:
    environment_id, city_id = unique("environment"), unique("city")
    environment = onboard(stack, environment_id, "system", ["member"])
    environment_steward = onboard(stack, environment_id, "steward", ["member", "steward"], register=False)
    city = onboard(stack, city_id, "system", ["member"])
    city_steward = onboard(stack, city_id, "steward", ["member", "steward"], register=False)
    air, indicator, boundaries = unique("air"), unique("city-air"), unique("boundaries")

    environment.client.create_dataset(air, "Air quality", "internal", city_schema("air-quality"), tags=["air"])
    _upload(environment, air, generate("air-quality", 24 * 24, folder / "air.csv"))
    grant = environment_steward.client.grant(air, city_id, "Air quality by district for the city's picture", "planning")

    schema = city_schema("district-boundaries")
    city.client.create_dataset(boundaries, "Districts", "public", schema, tags=["boundaries"])
    _upload(city, boundaries, generate("district-boundaries", 8, folder / "districts.jsonl"))
    city.client.define_derived_dataset(
        indicator,
        "PM2.5 by district and hour",
        [air],
        AIR_BY_DISTRICT.format(table=air.replace("-", "_")),
        indicator={"title": "Air quality", "unit": "µg/m³", "value": "mean_pm25", "time": "hour", "limit": 25},
    )
    city.client.define_alert_rule(air, RULE)
    spike = generate("air-quality", 24 * 8, folder / "spike.csv", seed=13, spike=True)
    _upload(environment, air, spike)
    return City(environment, environment_steward, city, city_steward, air, indicator, boundaries, grant["grant_id"], spike)


def _upload(member: Member, dataset_id: str, path: Path) -> None:
    upload = member.client.wait_for_upload(dataset_id, member.client.upload_file(dataset_id, path)["upload_id"], 60)
    assert upload["status"] == "published", upload


def picture_when_built(member: Member, indicator: str, air_version: int, timeout: float = 60.0) -> dict[str, Any]:
    """The picture once the indicator is built from `air_version` and the rule's alerts on it are in."""
    deadline = time.monotonic() + timeout
    while True:
        picture = member.client.city_picture()
        tiles = [i for i in picture["indicators"] if i["dataset_id"] == indicator]
        built_from = tiles[0]["sources"][0].get("version") if tiles and tiles[0]["version"] else None
        if built_from == air_version and any(rule["open"] for rule in picture["alerts"]):
            return picture
        assert time.monotonic() < deadline, picture
        time.sleep(0.5)
