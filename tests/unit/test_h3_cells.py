"""H3 cells: aggregated grants that coarsen locations to cells (views, rules and derived datasets
alike, with the same subject and k rules as any group), and `h3_cell` in a derived dataset's SQL."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import h3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cityshare.generators import generate
from functions.analytics.engine import Input, connect, run, sandbox
from functions.analytics.scope import scope_for
from functions.catalog.models import TableSchema
from functions.columnar.cells import h3_cell, h3_cells
from functions.core.errors import InvalidRequest
from functions.sharing.models import GrantTerms
from functions.sharing.views import SUPPRESSED_GROUPS, ViewSecrets, restrict
from tests.datasets import city_schema
from tests.unit.ingest_helpers import ingest
from tests.unit.test_aggregated_views import PRIVATE, REQUESTS, SECRETS, dataset, grant
from tests.unit.test_aggregated_views import curated as curated

SENSORS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sensor_id": {"type": "string"},
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        "pm25": {"type": ["number", "null"], "minimum": 0, "maximum": 1000},
    },
    "required": ["sensor_id", "latitude", "longitude"],
    "x-subject": {"columns": ["sensor_id"]},
}
SENSORS = dataset("noise-sensors", "environment", SENSORS_SCHEMA)
BY_CELL: dict[str, Any] = {
    "aggregate": {
        "group_by": ["cell"],
        "measures": [{"aggregate": "mean", "column": "pm25"}],
        "min_group_size": 3,
        "cells": {"column": "cell", "latitude": "latitude", "longitude": "longitude", "resolution": 8},
    }
}


def sensor_rows() -> list[dict[str, Any]]:
    """Sensors around the city, each reporting a few times from where it stands; one sensor alone in
    its cell, reporting often (one subject: never a group)."""
    rng = random.Random(5)
    rows = []
    for sensor in range(120):
        lat, lon = 51.45 + rng.uniform(-0.03, 0.03), -2.58 + rng.uniform(-0.05, 0.05)
        rows += [{"sensor_id": f"S{sensor}", "latitude": lat, "longitude": lon, "pm25": rng.uniform(5, 40)} for _ in range(3)]
    rows += [{"sensor_id": "LONE", "latitude": 51.60, "longitude": -2.30, "pm25": 99.0} for _ in range(12)]
    rows.append({"sensor_id": "S-NOWHERE", "latitude": None, "longitude": None, "pm25": 1.0})
    return rows


def expected_groups(rows: list[dict[str, Any]], k: int) -> dict[str, tuple[int, float]]:
    subjects: dict[str, set[str]] = defaultdict(set)
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        cell = h3.latlng_to_cell(row["latitude"], row["longitude"], 8) if row["latitude"] is not None else None
        subjects[cell].add(row["sensor_id"])
        values[cell].append(row["pm25"])
    return {c: (len(values[c]), sum(values[c]) / len(values[c])) for c in subjects if len(subjects[c]) >= k and c is not None}


def test_an_aggregated_grant_shares_cells_of_at_least_k_subjects_and_no_coordinate(tmp_path: Path) -> None:
    rows = sensor_rows()
    the_grant = grant(BY_CELL)
    the_grant.terms.check_against(SENSORS.table_schema)
    view = restrict(pa.Table.from_pylist(rows), SENSORS, the_grant, ViewSecrets())
    assert view.column_names == ["cell", "group_size", "mean_pm25"]
    shown = {r["cell"]: (r["group_size"], r["mean_pm25"]) for r in view.to_pylist()}
    expected = expected_groups(rows, 3)
    assert shown.keys() == expected.keys() and len(shown) >= 3
    assert all(shown[c][0] == expected[c][0] and shown[c][1] == pytest.approx(expected[c][1]) for c in shown)
    assert h3.latlng_to_cell(51.60, -2.30, 8) not in shown  # the lone sensor's twelve readings: one subject
    assert int(view.schema.metadata[SUPPRESSED_GROUPS]) >= 1
    assert all(h3.get_resolution(c) == 8 for c in shown)

    # Rules and derived datasets read the same groups (DuckDB's h3_cell is the same computation).
    path = tmp_path / "sensors.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    scope = scope_for(SENSORS, the_grant)
    assert scope.columns == ["cell", "group_size", "mean_pm25"]
    with sandbox([Input("noise_sensors", scope, [path])]) as db:
        found = {cell: (size, mean) for cell, size, mean in run(db, "SELECT cell, group_size, mean_pm25 FROM noise_sensors")}
    assert found.keys() == shown.keys()
    assert all(found[c][0] == shown[c][0] and found[c][1] == pytest.approx(shown[c][1]) for c in shown)
    with pytest.raises(InvalidRequest, match="duckdb engine"):
        scope.query("t", "true", dialect="athena")


def test_people_located_in_cells_are_released_with_differential_privacy(
    curated: tuple[pa.Table, Path],
) -> None:
    table, _ = curated
    terms = {
        "aggregate": {
            "group_by": ["cell", "category"],
            "privacy": PRIVATE,
            "cells": {"column": "cell", "latitude": "latitude", "longitude": "longitude", "resolution": 5},
        }
    }
    the_grant = grant(terms)
    the_grant.terms.check_against(REQUESTS.table_schema)
    view = restrict(table, REQUESTS, the_grant, SECRETS)
    assert view.column_names == ["cell", "category", "group_size"]
    located = table.select(["latitude", "longitude"]).to_pylist()
    true_cells = {h3.latlng_to_cell(r["latitude"], r["longitude"], 5) for r in located if r["latitude"] is not None}
    assert view.num_rows and set(view.column("cell").to_pylist()) <= true_cells
    with pytest.raises(InvalidRequest, match="differential privacy"):
        scope_for(REQUESTS, the_grant)  # a private grant is read through its views only


@pytest.mark.parametrize(
    ("cells", "group_by", "message"),
    [
        (
            {"column": "cell", "latitude": "latitude", "longitude": "longitude", "resolution": 8},
            ["district"],
            "must be one of group_by",
        ),
        (
            {"column": "cell", "latitude": "latitude", "longitude": "longitude", "resolution": 8},
            ["cell", "latitude"],
            "cannot also be grouped",
        ),
        (
            {"column": "district", "latitude": "latitude", "longitude": "longitude", "resolution": 8},
            ["district"],
            "a column of the dataset",
        ),
        ({"column": "cell", "latitude": "category", "longitude": "longitude", "resolution": 8}, ["cell"], "numeric coordinates"),
        (
            {"column": "cell", "latitude": "latitude", "longitude": "longitude", "resolution": 16},
            ["cell"],
            "less than or equal to 15",
        ),
        ({"column": "cell", "latitude": "altitude", "longitude": "longitude", "resolution": 8}, ["cell"], "not in the dataset"),
    ],
)
def test_cells_are_checked(cells: dict[str, Any], group_by: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GrantTerms.model_validate({"aggregate": {"group_by": group_by, "privacy": PRIVATE, "cells": cells}}).check_against(
            REQUESTS.table_schema
        )


def test_h3_cell_in_sql_is_h3s_cell() -> None:
    rng = random.Random(3)
    points = [(rng.uniform(-89, 89), rng.uniform(-179, 179), rng.randint(0, 15)) for _ in range(500)]
    db = connect()
    try:
        found = run(
            db,
            "SELECT h3_cell(lat, lon, res) FROM (SELECT unnest(?) AS lat, unnest(?) AS lon, unnest(?) AS res)",
            [
                [p[0] for p in points],
                [p[1] for p in points],
                [p[2] for p in points],
            ],
        )
        assert [row[0] for row in found] == [h3.latlng_to_cell(*p) for p in points]
        assert run(db, "SELECT h3_cell(NULL, 1, 8), h3_cell('nan'::DOUBLE, 1, 8)") == [(None, None)]
    finally:
        db.close()
    column = h3_cells(pa.array([51.45, None, float("inf")]), pa.array([-2.58, 1.0, 0.0]), 9)
    assert column.to_pylist() == [h3.latlng_to_cell(51.45, -2.58, 9), None, None]
    with pytest.raises(ValueError, match="resolution"):
        h3_cell(51.45, -2.58, 16)


def _gps_in_cells(resolution: str = "h3:9", **changes: Any) -> dict[str, Any]:
    schema = json.loads(json.dumps(city_schema("delivery-gps")))
    for axis in ("latitude", "longitude"):
        schema["properties"][axis]["x-personal"] = {
            "protection": "generalise",
            "category": "location",
            "granularity": resolution,
            "axis": axis,
        }
    for path, value in changes.items():
        column, key = path.split(".")
        schema["properties"][column]["x-personal"][key] = value
    return schema


def test_locations_generalised_on_ingest_are_stored_as_their_cells_centres(tmp_path: Path) -> None:
    source = generate("delivery-gps", 2_000, tmp_path / "gps.csv")
    outcome, curated_rows, _ = ingest(source.read_bytes(), TableSchema.model_validate(_gps_in_cells()), dataset_id="vans")
    assert outcome.accepted
    sent = list(csv.DictReader(source.open()))
    cells = [h3.latlng_to_cell(float(r["latitude"]), float(r["longitude"]), 9) for r in sent]
    assert [(r["latitude"], r["longitude"]) for r in curated_rows] == [h3.cell_to_latlng(c) for c in cells]
    assert len({(r["latitude"], r["longitude"]) for r in curated_rows}) == len(set(cells)) < len(sent)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (_gps_in_cells("h3:16"), "h3:<resolution 0-15>"),
        (_gps_in_cells(**{"latitude.axis": None}), "names its axis"),
        (_gps_in_cells(**{"longitude.axis": "latitude"}), "one latitude and one longitude"),
        (_gps_in_cells(**{"longitude.granularity": "h3:8"}), "same resolution"),
        (_gps_in_cells(**{"longitude.granularity": "0.01"}), "one latitude and one longitude"),
    ],
)
def test_cells_on_ingest_are_a_pair_at_one_resolution(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TableSchema.model_validate(schema)


def test_a_grant_coarsens_to_cells_by_its_aggregate_not_as_a_grid() -> None:
    with pytest.raises(ValueError, match="aggregated grant's cells"):
        GrantTerms.model_validate({"generalised": {"latitude": "h3:8"}}).check_against(SENSORS.table_schema)


def test_a_rule_on_a_cells_grant_treats_the_cell_as_text_not_a_number() -> None:
    from functions.analytics.models import AlertRuleCreate
    from functions.analytics.service import check_rule

    scope = scope_for(SENSORS, grant(BY_CELL))
    base = {"name": "Noisy cells", "group_by": ["cell"], "comparison": "gt", "threshold": 3}
    check_rule(AlertRuleCreate.model_validate({**base, "measure": {"aggregate": "max", "column": "group_size"}}), SENSORS, scope)
    for aggregate in ("mean", "max"):
        with pytest.raises(InvalidRequest, match="cell is not numeric"):
            rule = AlertRuleCreate.model_validate({**base, "measure": {"aggregate": aggregate, "column": "cell"}})
            check_rule(rule, SENSORS, scope)
    with pytest.raises(InvalidRequest, match="must be a date-time column"):
        rule = AlertRuleCreate.model_validate(
            {**base, "measure": {"aggregate": "count"}, "window": {"column": "cell", "minutes": 60}}
        )
        check_rule(rule, SENSORS, scope)


def test_a_cells_column_is_not_one_of_the_views_working_columns() -> None:
    cells = {"column": "__subject", "latitude": "latitude", "longitude": "longitude", "resolution": 8}
    with pytest.raises(ValueError, match="does not start with __"):
        GrantTerms.model_validate({"aggregate": {"group_by": ["__subject"], "cells": cells}})
