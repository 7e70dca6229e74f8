"""Every column type the catalog accepts goes through the whole data path: validate, protect,
profile (the version is stored and read back), a grant's view, an alert rule and a derived dataset.
One test per type; a type that breaks any step would leave uploads processing, or versions unreadable."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from functions.analytics.engine import Input, derived_rows, evaluate_files, json_schema_type, result_columns, sandbox
from functions.analytics.models import AlertRule
from functions.analytics.scope import scope_for
from functions.catalog.models import Dataset, TableSchema
from functions.ingest.models import DatasetVersion, IngestReport
from functions.ingest.pipeline import arrow_schema_summary
from functions.sharing.models import Grant
from functions.sharing.views import ViewSecrets, restrict
from tests.unit.ingest_helpers import ingest

# column declaration, CSV texts (one empty: null where the type allows it), a value for a row filter
TYPES: dict[str, tuple[dict[str, Any], list[str], Any]] = {
    "string": ({"type": "string"}, ["alpha", "beta", "gamma"], "beta"),
    "integer": ({"type": "integer"}, ["1", "-7", "42"], 1),
    "number": ({"type": "number"}, ["1.5", "-0.25", "1e3"], 1.5),
    "boolean": ({"type": "boolean"}, ["true", "false", "false"], True),
    "date": ({"type": "string", "format": "date"}, ["2026-11-04", "2026-01-31", "2024-02-29"], "2026-11-04"),
    "time": ({"type": "string", "format": "time"}, ["08:15:00", "23:59:59", "00:00:00"], "08:15:00"),
    "date-time": (
        {"type": "string", "format": "date-time"},
        ["2026-11-04T08:00:00Z", "2026-11-04T09:30:00Z", "2026-01-01T00:00:00Z"],
        None,
    ),
    "nullable string": ({"type": ["string", "null"]}, ["x", "", "z"], "x"),
    "nullable integer": ({"type": ["integer", "null"]}, ["3", "", "5"], 3),
    "nullable number": ({"type": ["number", "null"]}, ["3.5", "", "-1"], 3.5),
    "nullable boolean": ({"type": ["boolean", "null"]}, ["false", "", "true"], False),
    "nullable date": ({"type": ["string", "null"], "format": "date"}, ["2026-11-04", "", "2026-11-05"], None),
    "nullable date-time": (
        {"type": ["string", "null"], "format": "date-time"},
        ["2026-11-04T08:00:00Z", "", "2026-11-04T10:00:00Z"],
        None,
    ),
}


def dataset(schema: TableSchema) -> Dataset:
    return Dataset.model_validate(
        {
            "dataset_id": "typed",
            "title": "Typed",
            "classification": "internal",
            "schema": schema.model_dump(by_alias=True),
            "owner": "transport",
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
        }
    )


@pytest.mark.parametrize("kind", list(TYPES))
def test_a_type_goes_through_the_whole_data_path(kind: str, tmp_path: Path) -> None:
    column, texts, compared = TYPES[kind]
    schema = TableSchema.model_validate(
        {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}, "value": column}, "required": ["at"]}
    )
    rows = "".join(f"2026-11-04T0{n}:00:00Z,{text}\n" for n, text in enumerate(texts))
    outcome, _, parquet_bytes = ingest(("at,value\n" + rows).encode(), schema)
    assert outcome.accepted, outcome.report
    assert outcome.profile is not None and outcome.profile.rows == 3

    # The version as stored: the profile and output schema are JSON, read back by the same model.
    version = DatasetVersion(
        dataset_id="typed",
        version=1,
        owner="transport",
        upload_id="u" + "0" * 32,
        created_at="t",
        rows=3,
        files=["f"],
        bytes=len(parquet_bytes),
        content_sha256="x",
        profile=outcome.profile,
        report=IngestReport(),
        output_schema=arrow_schema_summary(pq.read_schema(_write(tmp_path, parquet_bytes))),
    )
    assert DatasetVersion.model_validate(json.loads(version.model_dump_json())) == version

    # A grant's view: the column, filtered on it where the type compares.
    curated_path = _write(tmp_path, parquet_bytes)
    terms: dict[str, Any] = {"columns": ["value"]}
    if compared is not None:
        terms["row_filter"] = {"condition": {"column": "value", "op": "eq", "value": compared}}
    grant = Grant.model_validate(
        {
            "grant_id": "g" + "1" * 24,
            "dataset_id": "typed",
            "owner": "transport",
            "grantee_department": "environment",
            "purpose": "every type is readable",
            "purpose_category": "research",
            "created_by": "s",
            "created_at": "t",
            "terms": terms,
        }
    )
    grant.terms.check_against(schema)
    view = restrict(pq.read_table(curated_path), dataset(schema), grant, ViewSecrets())
    assert view.column_names == ["value"] and view.num_rows == (1 if compared is not None else 3)

    # An alert rule counting rows per value, and a derived dataset selecting the column.
    rule = AlertRule.model_validate(
        {
            "name": "rows per value",
            "measure": {"aggregate": "count"},
            "group_by": ["value"],
            "window": {"column": "at", "minutes": 60},
            "comparison": "ge",
            "threshold": 1,
            "rule_id": "r" * 25,
            "dataset_id": "typed",
            "owner": "transport",
            "created_by": "p",
            "created_at": "t",
        }
    )
    scope = scope_for(dataset(schema), None)
    firings = evaluate_files(rule, Input("typed", scope, [curated_path]))
    assert len(firings) == 3 and all(json.dumps(f.group) for f in firings)
    with sandbox([Input("typed", scope, [curated_path])]) as db:
        columns = result_columns(db, "SELECT value FROM typed")
        assert json_schema_type(columns["value"])
        assert len(derived_rows(db, "SELECT value FROM typed", columns)) == 3


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "curated.parquet"
    path.write_bytes(data)
    return path


def test_times_of_every_kind_are_profiled(tmp_path: Path) -> None:
    """The audit's stuck upload: a `format: date` column made the profile step fail."""
    schema = TableSchema.model_validate({"type": "object", "properties": {"day": {"type": "string", "format": "date"}}})
    outcome, _, _ = ingest(b"day\n2026-11-04\n2026-11-05\n", schema)
    assert outcome.accepted and outcome.profile is not None
    assert outcome.profile.columns["day"].min == dt.date(2026, 11, 4).isoformat()
