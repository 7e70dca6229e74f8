"""Analytics in space over HTTP: transport derives its vans' speed by district from their GPS
positions and the city's public district boundaries (a place join, checked against GEOS on the data
as stored; a join over what the definer may not read is refused); environment shares its sensors'
readings as H3 cells of at least k sensors, which transport reads as a view and in a derived
dataset, and groups its own positions by cell with `h3_cell`."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import h3
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
    shapes = shapely.from_wkb([row["geometry"] for row in outlines])  # GeoParquet: WKB
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


SENSORS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sensor_id": {"type": "string", "maxLength": 16},
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        "db": {"type": "number", "minimum": 0, "maximum": 200, "x-unit": "dB"},
    },
    "required": ["sensor_id", "latitude", "longitude", "db"],
    "x-subject": {"columns": ["sensor_id"]},
}


def built(member: Any, dataset_id: str, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not member.client.get_dataset(dataset_id).get("latest_version") and time.monotonic() < deadline:
        time.sleep(0.5)
    return list(member.client.read_table(dataset_id).to_pylist())


def test_sensors_shared_as_h3_cells_of_at_least_k_sensors(stack: RunningStack, tmp_path: Path) -> None:
    environment = onboard(stack, unique("environment"), "analyst", ["member", "steward"])
    transport = onboard(stack, unique("transport"), "analyst", ["member", "steward"])
    sensors = unique("noise")
    environment.client.create_dataset(sensors, "Noise sensors", "internal", SENSORS)
    rng = random.Random(11)
    rows = []
    for n in range(90):
        lat, lon = 51.45 + rng.uniform(-0.02, 0.02), -2.58 + rng.uniform(-0.03, 0.03)
        rows += [
            {"sensor_id": f"N{n}", "latitude": round(lat, 6), "longitude": round(lon, 6), "db": round(rng.uniform(40, 80), 1)}
        ]
    rows += [{"sensor_id": "LONE", "latitude": 51.7, "longitude": -2.2, "db": 95.0} for _ in range(8)]
    source = tmp_path / "noise.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = environment.client.wait_for_upload(sensors, environment.client.upload_file(sensors, source)["upload_id"], 120)
    assert done["status"] == "published", done
    cells = {"column": "cell", "latitude": "latitude", "longitude": "longitude", "resolution": 7}
    terms = {
        "aggregate": {
            "group_by": ["cell"],
            "measures": [{"aggregate": "mean", "column": "db"}],
            "min_group_size": 5,
            "cells": cells,
        }
    }
    with pytest.raises(CityShareError) as grouped_twice:
        environment.client.grant(
            sensors,
            transport.profile.department,
            "Noise by area for planning",
            "planning",
            terms={"aggregate": {**terms["aggregate"], "group_by": ["cell", "latitude"]}},
        )
    assert grouped_twice.value.status == 422 and "cannot also be grouped" in str(grouped_twice.value)
    environment.client.grant(sensors, transport.profile.department, "Noise by area for planning", "planning", terms=terms)

    view = transport.client.read_table(sensors).to_pylist()
    assert view and set(view[0]) == {"cell", "group_size", "mean_db"}
    members: dict[str, set[str]] = {}
    for row in rows:
        members.setdefault(h3.latlng_to_cell(row["latitude"], row["longitude"], 7), set()).add(row["sensor_id"])
    assert {r["cell"]: r["group_size"] for r in view} == {
        cell: sum(1 for row in rows if h3.latlng_to_cell(row["latitude"], row["longitude"], 7) == cell)
        for cell, who in members.items()
        if len(who) >= 5
    }
    assert h3.latlng_to_cell(51.7, -2.2, 7) not in {r["cell"] for r in view}  # one sensor's eight readings

    # The grantee's derived dataset reads the same cells; its own data it may group by h3_cell.
    table = sensors.replace("-", "_")
    noisy = unique("noisy-cells")
    transport.client.define_derived_dataset(
        noisy, "Noisy cells", [sensors], f"SELECT cell, mean_db FROM {table} WHERE mean_db > 0"
    )
    assert {r["cell"] for r in built(transport, noisy)} == {r["cell"] for r in view}
    with pytest.raises(CityShareError) as raw:
        transport.client.define_derived_dataset(unique("raw"), "Raw", [sensors], f"SELECT latitude FROM {table}")
    assert raw.value.status == 400 and "latitude" in raw.value.detail
    own = unique("own-cells")
    environment.client.define_derived_dataset(
        own,
        "Readings by cell",
        [sensors],
        f"SELECT h3_cell(latitude, longitude, 8) AS cell, count(*) AS readings FROM {table} GROUP BY ALL",
    )
    counted = {r["cell"]: r["readings"] for r in built(environment, own)}
    assert sum(counted.values()) == len(rows) and all(h3.get_resolution(c) == 8 for c in counted)


def test_groups_of_rows_whose_subject_is_a_geometry_are_shared(stack: RunningStack, tmp_path: Path) -> None:
    """x-subject may name a geometry (rows about places): an aggregated grant counts each place once,
    its WKB told apart as bytes, in the view and in the grantee's SQL alike."""
    owner = onboard(stack, unique("environment"), "gis", ["member", "steward"])
    grantee = onboard(stack, unique("transport"), "analyst", ["member"])
    dataset_id = unique("noise-complaints")
    schema = {
        "type": "object",
        "properties": {
            "home": {"type": "string", "maxLength": 200, "x-geometry": {"types": ["Point"]}},
            "kind": {"type": "string", "maxLength": 16},
            "decibels": {"type": "number", "minimum": 0, "maximum": 200},
        },
        "required": ["home", "kind"],
        "x-subject": {"columns": ["home"]},
    }
    owner.client.create_dataset(dataset_id, "Noise complaints", "internal", schema)
    # Three homes complain about traffic (one of them four times), one home about a bar.
    homes = [[-2.58, 51.45], [-2.59, 51.46], [-2.6, 51.47], [-2.61, 51.48]]
    rows = [(0, "traffic"), (0, "traffic"), (0, "traffic"), (0, "traffic"), (1, "traffic"), (2, "traffic"), (3, "bar")]
    records = [
        {"home": json.dumps({"type": "Point", "coordinates": homes[h]}), "kind": kind, "decibels": 60.0 + n}
        for n, (h, kind) in enumerate(rows)
    ]
    upload = owner.client.push_records(dataset_id, records)
    assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
    terms = {"aggregate": {"group_by": ["kind"], "measures": [{"aggregate": "mean", "column": "decibels"}], "min_group_size": 3}}
    grant = owner.client.grant(dataset_id, grantee.profile.department, "Noise by cause", "planning", terms=terms)
    view = grantee.client.read_table(dataset_id, grant_id=grant["grant_id"]).to_pylist()
    assert [(g["kind"], g["group_size"]) for g in view] == [("traffic", 6)]  # three homes; the bar's one home is held back
    table = dataset_id.replace("-", "_")
    output = unique("noise-by-cause")
    derived = grantee.client.define_derived_dataset(
        output, "Noise by cause", [dataset_id], f"SELECT kind, group_size FROM {table}"
    )
    assert derived["columns"] == {"kind": "VARCHAR", "group_size": "BIGINT"}
    deadline = time.monotonic() + 60
    while not grantee.client.get_dataset(output).get("latest_version") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert grantee.client.read_table(output).to_pylist() == [{"kind": "traffic", "group_size": 6}]
