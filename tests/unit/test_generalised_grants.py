"""Grants that coarsen columns (hourly times, a numeric grid): the same values whether read through
a view (pyarrow) or by a rule or derived dataset (DuckDB), and refused where they cannot apply."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.analytics.engine import Input, run, sandbox
from functions.analytics.scope import scope_for
from functions.catalog.models import Dataset
from functions.sharing.models import Grant, GrantTerms
from functions.sharing.views import restrict

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
    view = restrict(table, DATASET, coarse, lambda: b"", lambda: b"k" * 32).to_pylist()
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
