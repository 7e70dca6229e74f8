"""Grant terms (the start of the sharing work): row filters are structured, validated against the
dataset's schema, and never text pasted into a query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from functions.catalog.models import TableSchema
from functions.sharing.models import GrantTerms, RowFilter

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "datasets"
TRAFFIC = TableSchema.model_validate(json.loads((SCHEMAS / "traffic-flow.json").read_text()))
REQUESTS = TableSchema.model_validate(json.loads((SCHEMAS / "service-requests.json").read_text()))


def terms(**values: Any) -> GrantTerms:
    return GrantTerms.model_validate(values)


def test_narrowed_terms_validate_against_the_schema() -> None:
    narrowed = terms(
        columns=["segment_id", "measured_at", "avg_speed_kmh"],
        row_filter={
            "all": [
                {"condition": {"column": "district", "op": "in", "value": ["Centre", "Harbour"]}},
                {"condition": {"column": "measured_at", "op": "ge", "value": "2026-11-01T00:00:00Z"}},
            ]
        },
    )
    narrowed.check_against(TRAFFIC)
    assert narrowed.restricted()
    assert narrowed.fingerprint() == terms(**narrowed.model_dump(exclude={"expires_at"})).fingerprint()
    assert not GrantTerms().restricted()


@pytest.mark.parametrize(
    "values",
    [
        {"columns": ["speed"]},
        {"row_filter": {"condition": {"column": "plate", "op": "eq", "value": "x"}}},
        {"row_filter": {"condition": {"column": "vehicle_count", "op": "gt", "value": "many"}}},
        {"row_filter": {"condition": {"column": "district", "op": "lt", "value": "C"}}},
        {"row_filter": {"condition": {"column": "district", "op": "in", "value": "Centre"}}},
        {"row_filter": {"condition": {"column": "district", "op": "not_null", "value": "x"}}},
        {"decrypt_columns": ["district"]},
    ],
)
def test_terms_that_do_not_fit_the_schema_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        terms(**values).check_against(TRAFFIC)


def test_only_encrypted_columns_can_be_decrypted_and_dropped_ones_never_granted() -> None:
    terms(decrypt_columns=["address"]).check_against(REQUESTS)
    with pytest.raises(ValueError):
        terms(columns=["phone"]).check_against(REQUESTS)


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"condition": {"column": "a", "op": "eq", "value": 1}, "all": [{"condition": {"column": "a", "op": "eq", "value": 1}}]},
        {"condition": {"column": "a; DROP TABLE x", "op": "eq", "value": 1}},
        {"condition": {"column": "a", "op": "like", "value": "%"}},
        {"sql": "1=1"},
    ],
)
def test_malformed_row_filters_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RowFilter.model_validate(document)


def test_row_filters_nest_only_a_few_levels() -> None:
    leaf: dict[str, Any] = {"condition": {"column": "a", "op": "eq", "value": 1}}
    for _ in range(5):
        leaf = {"all": [leaf]}
    with pytest.raises(ValidationError):
        RowFilter.model_validate(leaf)
