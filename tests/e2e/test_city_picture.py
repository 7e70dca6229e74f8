"""The city picture over HTTP with the real client (issue: Decision support): an indicator built
from another department's shared data, by district and over time, checked against the data
itself; the alerts of the department's rule; the map; every read audited; and nothing for a
department that was granted nothing."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from cityshare.client import CityShareError
from tests.conftest import RunningStack, onboard, unique
from tests.e2e.city_setup import City, build_city, picture_when_built


@pytest.fixture(scope="module")
def city(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    yield build_city(stack, tmp_path_factory.mktemp("city"))


def test_an_indicator_shows_the_shared_data_by_district_and_over_time(city: City) -> None:
    picture = picture_when_built(city.city, city.indicator, air_version=2)
    (tile,) = [i for i in picture["indicators"] if i["dataset_id"] == city.indicator]
    # The truth, from the file the latest version was made of: hourly means per district.
    hourly: dict[tuple[str, str], list[float]] = defaultdict(list)
    with city.spike.open() as source:
        for row in csv.DictReader(source):
            hourly[(row["measured_at"][:13], row["district"])].append(float(row["pm25"]))
    latest = max(hour for hour, _ in hourly)
    expected = {district: sum(v) / len(v) for (hour, district), v in hourly.items() if hour == latest}
    assert tile["at"].startswith(latest.replace("T", "T")) and set(tile["districts"]) == set(expected)
    assert all(abs(tile["districts"][d] - round(expected[d], 3)) < 1e-6 for d in expected)
    assert tile["city"] == pytest.approx(sum(expected.values()) / len(expected), abs=1e-3)
    assert [p["at"] for p in tile["series"]] == sorted(p["at"] for p in tile["series"]) and len(tile["series"]) == 8
    assert tile["limit"] == 25 and tile["unit"] == "µg/m³" and tile["better"] == "lower"
    # What it was built from and under which grant, for the tile's links.
    assert tile["sources"] == [
        {
            "dataset_id": city.air,
            "version": 2,
            "owner": city.environment.profile.department,
            "readable": True,
            "grant_id": city.grant_id,
        }
    ]
    # The rule's alerts: the polluted morning in North Park, open on the latest version.
    (rule,) = picture["alerts"]
    assert rule["open"] >= 1 and rule["districts"].get("North Park", 0) >= 1 and rule["dataset_id"] == city.air
    # The map: eight districts, outlines as [lon, lat] rings.
    assert picture["boundaries"]["dataset_id"] == city.boundaries and len(picture["boundaries"]["districts"]) == 8
    ring = picture["boundaries"]["districts"]["Centre"][0]
    assert ring[0] == ring[-1] and all(-3 < lon < -2 and 51 < lat < 52 for lon, lat in ring)
    assert len(str(picture)) < 60_000  # a few numbers, not the data


def test_each_read_behind_the_picture_is_audited(city: City) -> None:
    picture_when_built(city.city, city.indicator, air_version=2)
    city_chain = [e for e in city.city_steward.client.iter_audit() if e["action"] == "ReadData"]
    assert any(
        e["resource"] == f"Dataset::{city.indicator}" and e["details"].get("purpose") == "city-picture" for e in city_chain
    )
    owner_chain = [e for e in city.environment_steward.client.iter_audit() if e["action"] == "ReadData"]
    assert any(e["resource"] == f"Dataset::{city.air}" and e["details"].get("purpose") == "alerts" for e in owner_chain)


def test_a_department_granted_nothing_sees_no_indicator_and_no_alert(stack: RunningStack, city: City) -> None:
    other = onboard(stack, unique("health"), "system", ["member"])
    picture = other.client.city_picture()
    assert picture["indicators"] == [] and picture["alerts"] == []
    assert picture["boundaries"] and picture["boundaries"]["dataset_id"]  # the public map is anyone's


def test_an_indicator_must_name_a_numeric_result_column(city: City) -> None:
    with pytest.raises(CityShareError) as refused:
        city.city.client.define_derived_dataset(
            unique("bad-indicator"),
            "Districts",
            [city.air],
            f"SELECT district, count(*) AS readings FROM {city.air.replace('-', '_')} GROUP BY ALL",
            indicator={"title": "Readings", "value": "district"},
        )
    assert refused.value.status == 400 and "must be a number" in str(refused.value)


def test_after_a_revocation_the_tile_says_its_input_is_no_longer_granted(stack: RunningStack, city: City) -> None:
    picture_when_built(city.city, city.indicator, air_version=2)
    city.environment_steward.client.revoke_grant(city.air, city.grant_id)
    picture = city.city.client.city_picture()
    (tile,) = [i for i in picture["indicators"] if i["dataset_id"] == city.indicator]
    (source,) = tile["sources"]
    assert source["readable"] is False and source["grant_id"] is None
    assert picture["alerts"] == []  # the rule's alerts are values of data it may no longer read
    # A suspended department's picture is refused by the same policies as any of its reads.
    stack.admin().set_department_status(city.city.profile.department, "suspended")
    try:
        with pytest.raises(CityShareError) as refused:
            city.city.client.city_picture()
        assert refused.value.status in (401, 403)
    finally:
        stack.admin().set_department_status(city.city.profile.department, "active")


def test_the_demo_indicators_file_defines_valid_indicators() -> None:
    """schemas/examples/city/, which the demo defines: each names its result columns."""
    import json

    from functions.analytics.models import DerivedDatasetCreate

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "schemas" / "examples" / "city").glob("*.json")):
        definition = json.loads(path.read_text())
        parsed = DerivedDatasetCreate.model_validate(definition)
        assert parsed.indicator is not None and parsed.indicator.value in parsed.sql
