"""Grants that coarsen columns (hourly times, a numeric grid): the same values whether read through
a view (pyarrow) or by a rule or derived dataset (DuckDB), and refused where they cannot apply."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.analytics.engine import Input, run, sandbox
from functions.analytics.scope import coarsened, scope_for
from functions.catalog.models import Dataset
from functions.privacy.protect import generalise
from functions.sharing.models import Grant, GrantTerms
from functions.sharing.views import ViewSecrets, restrict

DATASET = Dataset.model_validate(
    {
        "dataset_id": "flow",
        "title": "Flow",
        "classification": "confidential",
        "schema": {
            "type": "object",
            "properties": {
                "segment_id": {"type": "string"},
                "measured_at": {"type": "string", "format": "date-time"},
                "avg_speed_kmh": {"type": "number"},
                "vehicle_count": {"type": "integer"},
                "plate": {"type": "string", "x-personal": {"category": "vehicle-id", "protection": "pseudonymise"}},
            },
        },
        "owner": "transport",
        "created_at": "t",
        "updated_at": "t",
        "created_by": "p",
    }
)
START = dt.datetime(2026, 11, 4, 8, 0, tzinfo=dt.UTC)
ROWS = [
    {"segment_id": "S-1", "measured_at": START + dt.timedelta(minutes=m), "avg_speed_kmh": s, "vehicle_count": c, "plate": "x"}
    for m, s, c in ((5, 12.34, 17), (55, 48.9, 104), (70, 7.5, 3))
]


def grant(terms: dict[str, Any]) -> Grant:
    return Grant.model_validate(
        {
            "grant_id": "g" + "7" * 24,
            "dataset_id": "flow",
            "owner": "transport",
            "grantee_department": "environment",
            "purpose": "Hourly congestion",
            "purpose_category": "planning",
            "created_by": "s",
            "created_at": "t",
            "terms": terms,
        }
    )


def test_a_view_and_duckdb_coarsen_the_same_way(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            ("segment_id", pa.string()),
            ("measured_at", pa.timestamp("us", tz="UTC")),
            ("avg_speed_kmh", pa.float64()),
            ("vehicle_count", pa.int64()),
            ("plate", pa.string()),
        ]
    )
    table = pa.Table.from_pylist(ROWS, schema=schema)
    pq.write_table(table, tmp_path / "flow.parquet")
    coarse = grant(
        {
            "columns": ["measured_at", "avg_speed_kmh", "vehicle_count"],
            "generalised": {"measured_at": "1h", "avg_speed_kmh": "10", "vehicle_count": "10"},
        }
    )
    view = restrict(table, DATASET, coarse, ViewSecrets(mask_key=lambda: b"k" * 32)).to_pylist()
    assert [r["measured_at"].hour for r in view] == [8, 8, 9] and {r["measured_at"].minute for r in view} == {0}
    assert [r["avg_speed_kmh"] for r in view] == [10.0, 40.0, 0.0] and [r["vehicle_count"] for r in view] == [10, 100, 0]
    with sandbox([Input("flow", scope_for(DATASET, coarse), [tmp_path / "flow.parquet"])]) as db:
        rows = run(db, "SELECT strftime(measured_at, '%H:%M'), avg_speed_kmh, vehicle_count FROM flow ORDER BY 1, 2")
    assert rows == [("08:00", 10.0, 10), ("08:00", 40.0, 100), ("09:00", 0.0, 0)]


@pytest.mark.parametrize(
    ("generalised", "message"),
    [
        ({"segment_id": "1h"}, "applies to numbers"),
        ({"measured_at": "90 minutes"}, "date-time granularity"),
        ({"avg_speed_kmh": "0"}, "positive number"),
        ({"plate": "10"}, "protected at ingest"),
        ({"nope": "1h"}, "not in the dataset"),
    ],
)
def test_generalisation_is_checked_against_the_schema(generalised: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GrantTerms(generalised=generalised).check_against(DATASET.table_schema)


# -- exact grids: the same cell in ingest and views (pyarrow) and in rules and derived datasets (DuckDB)
grids = st.sampled_from(["0.001", "0.01", "0.1", "0.25", "0.5", "1", "2.5", "10"])
decimal_values = st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


def oracle(value: Decimal, granularity: str) -> Decimal:
    """The grid cell in exact decimal arithmetic."""
    step = Decimal(granularity)
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


@settings(max_examples=300, deadline=None)
@given(grids, st.lists(decimal_values, min_size=1, max_size=40), st.integers(-200_000, 200_000))
def test_numeric_generalisation_is_exact_on_and_off_grid_lines(granularity: str, values: list[Decimal], cells: int) -> None:
    on_line = Decimal(cells) * Decimal(granularity)  # a value exactly on a grid line stays in its cell
    texts = [str(v) for v in [*values, on_line]]
    numbers = pa.array([float(t) for t in texts], pa.float64())
    expected = [float(oracle(Decimal(t), granularity)) for t in texts]
    assert generalise(numbers, granularity).to_pylist() == expected
    with duckdb.connect() as db:
        db.register("v", pa.table({"x": numbers}))
        sql = f"SELECT {coarsened('x', granularity, 'number')} FROM v"
        assert [row[0] for row in db.execute(sql).fetchall()] == expected


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["1", "5", "10", "60"]), st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40))
def test_integer_buckets_are_exact_for_any_integer(width: str, values: list[int]) -> None:
    expected = [v // int(width) * int(width) for v in values]
    assert generalise(pa.array(values, pa.int64()), width).to_pylist() == expected
    with duckdb.connect() as db:
        db.register("v", pa.table({"x": pa.array(values, pa.int64())}))
        assert [row[0] for row in db.execute(f"SELECT {coarsened('x', width, 'integer')} FROM v").fetchall()] == expected


def test_the_examples_the_audit_found() -> None:
    assert generalise(pa.array([4.01, 0.7, 7.1, 52.37, -0.7]), "0.01").to_pylist() == [4.01, 0.7, 7.1, 52.37, -0.7]
    assert generalise(pa.array([0.7, 7.1, 0.69]), "0.1").to_pylist() == [0.7, 7.1, 0.6]
    with pytest.raises(ValueError, match="whole number"):
        GrantTerms(generalised={"vehicle_count": "2.5"}).check_against(DATASET.table_schema)
