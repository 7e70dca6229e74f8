"""The city picture's arithmetic (functions/analytics/city.py): an indicator's latest values by
district, the city's figure and series; district outlines from GeoJSON; the demo city's map."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from cityshare.generators import DISTRICTS, generate
from functions.analytics.city import SERIES_POINTS, figures, outlines
from functions.analytics.models import Indicator


def hourly(rows: list[tuple[int, str, float | None]]) -> pa.Table:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    return pa.table(
        {
            "hour": [start + timedelta(hours=h) for h, _, _ in rows],
            "district": [d for _, d, _ in rows],
            "value": [v for _, _, v in rows],
        }
    )


def test_the_latest_time_gives_the_map_and_the_districts_make_the_city() -> None:
    table = hourly([(0, "Centre", 10.0), (0, "Harbour", 30.0), (1, "Centre", 20.0), (1, "Harbour", 40.0), (1, "North", None)])
    mean = figures(table, Indicator(title="PM2.5", value="value", time="hour"))
    assert mean["districts"] == {"Centre": 20.0, "Harbour": 40.0}  # a null value is no value
    assert mean["at"] == "2026-11-02T01:00:00+00:00" and mean["city"] == 30.0
    assert [p["value"] for p in mean["series"]] == [20.0, 30.0]
    total = figures(table, Indicator(title="Requests", value="value", time="hour", combine="sum"))
    assert total["city"] == 60.0 and [p["value"] for p in total["series"]] == [40.0, 60.0]


def test_a_city_wide_indicator_and_one_without_time() -> None:
    table = hourly([(0, "x", 80.0), (1, "x", 85.0)])
    citywide = figures(table.drop(["district"]), Indicator(title="Beds", value="value", district=None, time="hour"))
    assert citywide["districts"] == {} and citywide["city"] == 85.0 and len(citywide["series"]) == 2
    timeless = figures(table.drop(["hour"]), Indicator(title="Now", value="value"))
    assert timeless["series"] == [] and timeless["districts"] == {"x": 82.5} and timeless["at"] is None
    assert figures(table.slice(0, 0), Indicator(title="Empty", value="value", time="hour")) == {}


def test_the_series_keeps_the_latest_points() -> None:
    table = hourly([(h, "Centre", float(h)) for h in range(SERIES_POINTS + 25)])
    series = figures(table, Indicator(title="Long", value="value", time="hour"))["series"]
    assert len(series) == SERIES_POINTS and series[-1]["value"] == SERIES_POINTS + 24.0


def test_outlines_read_polygons_and_multipolygons_and_skip_what_is_not_one() -> None:
    square = [[0.123456, 51.0], [0.2, 51.0], [0.2, 51.1], [0.123456, 51.0]]
    rows = [
        {"district": "A", "geometry": json.dumps({"type": "Polygon", "coordinates": [square]})},
        {"district": "B", "geometry": json.dumps({"type": "MultiPolygon", "coordinates": [[square], [square]]})},
        {"district": "C", "geometry": "not json"},
        {"district": "D", "geometry": json.dumps({"type": "Point", "coordinates": [0, 0]})},
        {"district": None, "geometry": json.dumps({"type": "Polygon", "coordinates": [square]})},
    ]
    found = outlines(rows)
    assert set(found) == {"A", "B"} and len(found["B"]) == 2
    assert found["A"][0][0] == [0.1235, 51.0]


def test_the_demo_city_has_every_district_and_neighbours_share_their_borders(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in generate("district-boundaries", 8, tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["district"] for r in rows] == DISTRICTS
    rings = {r["district"]: json.loads(r["geometry"])["coordinates"][0] for r in rows}
    assert all(ring[0] == ring[-1] and r["area_km2"] > 1 for r, ring in zip(rows, rings.values(), strict=True))
    centre = {tuple(point) for point in rings["Centre"]}
    for name in DISTRICTS[1:]:
        assert len(centre & {tuple(point) for point in rings[name]}) >= 10, name  # each touches the centre


def test_times_are_ordered_as_numbers_and_the_city_combines_districts_not_rows() -> None:
    """Hours 9 and 10 as numbers (text would put 9 last); two rows of one district are that
    district's value, and the city's is its districts', not its rows'."""
    table = pa.table({"hour": [9, 10, 10, 10], "district": ["A", "A", "A", "B"], "value": [1.0, 2.0, 4.0, 9.0]})
    found = figures(table, Indicator(title="Hourly", value="value", time="hour"))
    assert found["at"] == "10" and [p["at"] for p in found["series"]] == ["9", "10"]
    assert found["districts"] == {"A": 3.0, "B": 9.0} and found["city"] == 6.0  # (3 + 9) / 2, not (2 + 4 + 9) / 3
    assert figures(table, Indicator(title="Total", value="value", time="hour", combine="sum"))["city"] == 15.0
