"""Point-in-polygon joins (derived datasets' `places`): the SQL's answer against GEOS's (shapely) on
the demo city's districts, holes, multipolygons, random shapes, and points on shared borders."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cityshare.generators import district_boundaries
from functions.analytics.engine import Input, derived_rows, result_columns, sandbox
from functions.analytics.models import DerivedDatasetCreate, PlaceJoin
from functions.analytics.scope import ReadScope

AREAS = pa.schema([("district", pa.string()), ("geometry", pa.string())])


def _place(**values: Any) -> PlaceJoin:
    defaults: dict[str, Any] = {
        "table": "positions_in_districts",
        "points": "positions",
        "longitude": "longitude",
        "latitude": "latitude",
        "areas": "districts",
        "area_columns": ["district"],
    }
    return PlaceJoin.model_validate({**defaults, **values})


def _inputs(tmp_path: Path, points: pa.Table, areas: list[tuple[str, str | None]]) -> list[Input]:
    pq.write_table(points, tmp_path / "points.parquet")
    area_table = pa.Table.from_pylist([{"district": d, "geometry": g} for d, g in areas], schema=AREAS)
    pq.write_table(area_table, tmp_path / "areas.parquet")
    return [
        Input("positions", ReadScope("positions", list(points.column_names)), [tmp_path / "points.parquet"]),
        Input("districts", ReadScope("districts", ["district", "geometry"]), [tmp_path / "areas.parquet"]),
    ]


def _placed(tmp_path: Path, points: pa.Table, areas: list[tuple[str, str | None]], **place: Any) -> dict[int, list[str]]:
    """Point id -> the districts the join puts it in."""
    sql = "SELECT id, district FROM positions_in_districts"
    with sandbox(_inputs(tmp_path, points, areas), [_place(**place)]) as connection:
        rows = derived_rows(connection, sql, result_columns(connection, sql))
    placed: dict[int, list[str]] = {}
    for point_id, district in rows:
        placed.setdefault(point_id, []).append(district)
    return placed


def _by_geos(lon: np.ndarray, lat: np.ndarray, areas: list[tuple[str, str | None]]) -> dict[int, list[str]]:
    shapes = shapely.from_geojson([g for _, g in areas])
    tree = shapely.STRtree(shapes)
    point_index, area_index = tree.query(shapely.points(lon, lat), predicate="within")
    placed: dict[int, list[str]] = {}
    for p, a in zip(point_index.tolist(), area_index.tolist(), strict=True):
        placed.setdefault(p, []).append(areas[a][0])
    return placed


def _city() -> list[tuple[str, str | None]]:
    return [(row["district"], row["geometry"]) for row in district_boundaries(random.Random(1), 0)]


def test_points_land_in_the_district_geos_puts_them_in(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(-2.67, -2.49, 20_000), rng.uniform(51.40, 51.50, 20_000)
    points = pa.table({"id": np.arange(lon.size), "longitude": lon, "latitude": lat, "speed_kmh": rng.uniform(0, 50, lon.size)})
    areas = _city()
    placed = _placed(tmp_path, points, areas)
    assert placed == _by_geos(lon, lat, areas)
    assert 10_000 < len(placed) < 20_000  # most points are in the city, some outside every district
    assert {d for found in placed.values() for d in found} == {name for name, _ in areas}


def test_the_joined_table_keeps_every_point_column_and_gains_the_areas(tmp_path: Path) -> None:
    points = pa.table({"id": [1], "longitude": [-2.58], "latitude": [51.45], "speed_kmh": [12.5]})
    sql = "SELECT * FROM positions_in_districts"
    with sandbox(_inputs(tmp_path, points, _city()), [_place()]) as connection:
        assert list(result_columns(connection, sql)) == ["id", "longitude", "latitude", "speed_kmh", "district"]
        assert connection.execute(sql).fetchall() == [(1, -2.58, 51.45, 12.5, "Centre")]


def test_holes_multipolygons_and_bad_values(tmp_path: Path) -> None:
    square = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]
    hole = [[1, 1], [1, 3], [3, 3], [3, 1], [1, 1]]
    areas: list[tuple[str, str | None]] = [
        ("ring", json.dumps({"type": "Polygon", "coordinates": [square, hole]})),
        (
            "islands",
            json.dumps(
                {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[10, 0], [11, 0], [11, 1], [10, 1], [10, 0]]],
                        [[[12, 0], [13, 0], [13, 1], [12, 1], [12, 0]]],
                    ],
                }
            ),
        ),
        ("nothing", None),
        ("broken", "{not json"),
        ("not a polygon", json.dumps({"type": "Point", "coordinates": [2, 2]})),
    ]
    xs = [0.5, 2.0, 3.5, 10.5, 11.5, 12.5, 2.0, None, float("nan")]
    ys = [0.5, 2.0, 3.5, 0.5, 0.5, 0.5, 5.0, 1.0, 1.0]
    points = pa.table({"id": list(range(len(xs))), "longitude": xs, "latitude": ys})
    assert _placed(tmp_path, points, areas) == {0: ["ring"], 2: ["ring"], 3: ["islands"], 5: ["islands"]}


def test_a_point_on_a_border_two_districts_share_lands_in_exactly_one(tmp_path: Path) -> None:
    areas = _city()
    # Every vertex and the middle of every edge of every district: points on shared borders.
    on_borders = []
    for _, geometry in areas:
        ring = json.loads(geometry or "{}")["coordinates"][0]
        for (x1, y1), (x2, y2) in itertools.pairwise(ring):
            on_borders += [(x1, y1), ((x1 + x2) / 2, (y1 + y2) / 2)]
    lon, lat = np.array([p[0] for p in on_borders]), np.array([p[1] for p in on_borders])
    points = pa.table({"id": np.arange(lon.size), "longitude": lon, "latitude": lat})
    placed = _placed(tmp_path, points, areas)
    assert all(len(found) == 1 for found in placed.values())
    # A point inside the city, off its outer edge, is in some district: no point falls between two.
    city = shapely.union_all(shapely.from_geojson([g for _, g in areas]))
    places = shapely.points(lon, lat)
    inner = shapely.contains(city, places) & (shapely.distance(city.boundary, places) > 1e-9)
    assert inner.sum() > 100
    assert set(np.flatnonzero(inner).tolist()) <= set(placed)


def test_points_given_as_geojson(tmp_path: Path) -> None:
    texts = [
        json.dumps({"type": "Point", "coordinates": [-2.58, 51.45]}),
        None,
        "not json",
        json.dumps({"type": "Point", "coordinates": [0, 0]}),
    ]
    points = pa.table({"id": [0, 1, 2, 3], "location": texts})
    assert _placed(tmp_path, points, _city(), longitude=None, latitude=None, point="location") == {0: ["Centre"]}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10), st.floats(0.3, 3)), min_size=1, max_size=6), st.integers(0, 2**31))
def test_random_shapes_agree_with_geos(shapes: list[tuple[float, float, float]], seed: int) -> None:
    import tempfile

    # Valid polygons of many vertices, some overlapping, some with a hole (a buffer around a point
    # less a smaller one), rounded to the 6 decimals of GeoJSON coordinates.
    areas: list[tuple[str, str | None]] = []
    for index, (x, y, radius) in enumerate(shapes):
        disc = shapely.buffer(shapely.Point(x, y), radius, quad_segs=6)
        if index % 2:
            disc = shapely.difference(disc, shapely.buffer(shapely.Point(x, y), radius / 3, quad_segs=3))
        disc = shapely.set_precision(disc, 1e-6)
        areas.append((f"a{index}", shapely.to_geojson(disc)))
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-3, 13, 2_000), rng.uniform(-3, 13, 2_000)
    points = pa.table({"id": np.arange(lon.size), "longitude": lon, "latitude": lat})
    with tempfile.TemporaryDirectory() as folder:
        placed = _placed(Path(folder), points, areas)
    expected = _by_geos(lon, lat, areas)
    assert {k: sorted(v) for k, v in placed.items()} == {k: sorted(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"point": "location"}, "longitude and latitude columns, or as a point column"),
        ({"longitude": None}, "longitude and latitude columns, or as a point column"),
        ({"area_columns": ["geometry"]}, "the area's geometry is not one of them"),
        ({"area_columns": []}, "at least 1 item"),
    ],
)
def test_a_place_join_says_how_the_points_are_given(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _place(**changes)


def test_a_place_join_reads_its_inputs_and_names_its_own_table() -> None:
    base = {"dataset_id": "speed-by-district", "title": "Speed", "inputs": ["positions", "districts"], "sql": "SELECT 1 AS one"}
    DerivedDatasetCreate.model_validate({**base, "places": [_place().model_dump()]})
    with pytest.raises(ValidationError, match="not among them"):
        DerivedDatasetCreate.model_validate({**base, "inputs": ["positions"], "places": [_place().model_dump()]})
    with pytest.raises(ValidationError, match="a table of its own"):
        DerivedDatasetCreate.model_validate({**base, "places": [_place(table="districts").model_dump()]})
    with pytest.raises(ValidationError, match="duckdb engine"):
        DerivedDatasetCreate.model_validate(
            {**base, "engine": "athena", "result_columns": {"one": "integer"}, "places": [_place().model_dump()]}
        )
