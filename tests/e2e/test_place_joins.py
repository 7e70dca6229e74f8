"""Point-in-polygon joins over HTTP: transport derives its vans' speed by district from their GPS
positions and the city's public district boundaries; the result is checked against GEOS (shapely)
on the data as stored, and a join over what the definer may not read is refused."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import shapely

from cityshare import CityShareError
from cityshare.generators import generate
from tests.conftest import RunningStack, onboard, unique
from tests.datasets import city_schema


def test_vans_speed_by_district_from_positions_and_boundaries(stack: RunningStack, tmp_path: Path) -> None:
    transport = onboard(stack, unique("transport"), "analyst", ["member", "steward"])
    environment = onboard(stack, unique("environment"), "analyst", ["member", "steward"])
    gps, districts, output = unique("vans"), unique("districts"), unique("speed-by-district")
    transport.client.create_dataset(gps, "Vans", "confidential", city_schema("delivery-gps"))
    environment.client.create_dataset(districts, "Districts", "public", city_schema("district-boundaries"), tags=["boundaries"])
    for member, dataset_id, name, rows in (
        (transport, gps, "delivery-gps", 4000),
        (environment, districts, "district-boundaries", 8),
    ):
        path = generate(name, rows, tmp_path / f"{name}.jsonl")
        done = member.client.wait_for_upload(dataset_id, member.client.upload_file(dataset_id, path)["upload_id"], 120)
        assert done["status"] == "published", done
    districts_table = districts.replace("-", "_")
    place = {
        "table": "positions",
        "points": gps,
        "longitude": "longitude",
        "latitude": "latitude",
        "areas": districts,
        "area_columns": ["district"],
    }
    sql = "SELECT district, count(*) AS positions, round(avg(speed_kmh), 3) AS mean_speed_kmh FROM positions GROUP BY district"

    def define(places: list[dict[str, Any]], by: Any = transport, query: str = sql) -> dict[str, Any]:
        return dict(by.client.define_derived_dataset(output, "Vans' speed by district", [gps, districts], query, places=places))

    refusals = [
        ({**place, "longitude": "operator"}, "not a number column"),
        ({**place, "geometry": "area_km2"}, "not an x-geometry column of Polygons"),
        ({**place, "area_columns": ["district", "population"]}, f"{districts}.population"),
        ({**place, "points": districts, "longitude": "area_km2", "latitude": "area_km2"}, "already have a column named district"),
    ]
    for refused, message in refusals:
        with pytest.raises(CityShareError) as error:
            define([refused])
        assert error.value.status == 400 and message in error.value.detail, error.value.detail
    with pytest.raises(CityShareError) as unknown_table:
        define([place], query=f"SELECT * FROM {districts_table} JOIN elsewhere ON true")
    assert unknown_table.value.status == 400 and "elsewhere" in unknown_table.value.detail
    with pytest.raises(CityShareError) as not_granted:  # environment may read its own districts, not transport's vans
        define([place], by=environment)
    assert not_granted.value.status in (403, 404)

    derived = define([place])
    assert derived["columns"] == {"district": "VARCHAR", "positions": "BIGINT", "mean_speed_kmh": "DOUBLE"}
    assert derived["places"][0]["table"] == "positions"
    deadline = time.monotonic() + 90
    while not transport.client.get_dataset(output).get("latest_version") and time.monotonic() < deadline:
        time.sleep(0.5)
    built = transport.client.read_table(output).to_pylist()

    # The same join by GEOS, over the positions as stored (generalised to the 0.001 grid on ingest).
    # GEOS's `within` leaves a point on a border out of both districts; the join puts it in exactly
    # one: between `within` and `covers`, and every covered point counted once.
    stored = transport.client.read_table(gps).to_pylist()
    outlines = environment.client.read_table(districts).to_pylist()
    shapes = shapely.from_geojson([row["geometry"] for row in outlines])
    inside: dict[str, list[float]] = defaultdict(list)
    covered: dict[str, int] = defaultdict(int)
    anywhere = 0
    for row in stored:
        point = shapely.Point(row["longitude"], row["latitude"])
        anywhere += any(shapely.covers(shape, point) for shape in shapes)
        for outline, shape in zip(outlines, shapes, strict=True):
            if shapely.within(point, shape):
                inside[outline["district"]].append(row["speed_kmh"])
            covered[outline["district"]] += bool(shapely.covers(shape, point))
    counts = {row["district"]: row["positions"] for row in built}
    assert sum(counts.values()) == anywhere > 3000  # most vans are in the city
    assert all(len(inside[d]) <= n <= covered[d] for d, n in counts.items()), (counts, covered)
    clear = [d for d in counts if len(inside[d]) == covered[d]]  # no van on its border
    assert len(clear) >= 4
    assert {row["district"]: row["mean_speed_kmh"] for row in built if row["district"] in clear} == pytest.approx(
        {d: sum(inside[d]) / len(inside[d]) for d in clear}, abs=1e-3
    )
    upstream = {edge["dataset_id"] for edge in transport.client.lineage(output)["upstream"]}
    assert upstream == {gps, districts}
