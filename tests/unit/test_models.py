"""Dataset schemas: the shipped city schemas are valid, malformed ones are refused with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from functions.catalog.models import DatasetCreate, DatasetUpdate, TableSchema

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "datasets").glob("*.json"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_city_schemas_are_valid_and_round_trip(path: Path) -> None:
    document = json.loads(path.read_text())
    schema = TableSchema.model_validate(document)
    assert schema.model_dump() == document


def test_personal_columns_are_declared() -> None:
    schema = TableSchema.model_validate(json.loads(SCHEMAS[[p.stem for p in SCHEMAS].index("service-requests")].read_text()))
    assert {name: p.protection for name, p in schema.personal_columns().items()} == {
        "address": "encrypt",
        "phone": "drop",
        "latitude": "generalise",
        "longitude": "generalise",
        "citizen_id": "pseudonymise",
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {}},
        {"type": "array", "properties": {"a": {"type": "string"}}},
        {"type": "object", "properties": {"A-B": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "object"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
        {"type": "object", "properties": {"a": {"type": "string", "x-personal": {"protection": "hide"}}}},
        {"type": "object", "properties": {"a": {"type": "string", "$ref": "#/x"}}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
    ],
)
def test_malformed_schemas_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TableSchema.model_validate(schema)


def test_dataset_ids_and_tags_are_constrained() -> None:
    base = {"title": "t", "classification": "public", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
    for bad_id in ("../x", "A", "ab", "x" * 64, "a\x00b", "%2e%2e"):
        with pytest.raises(ValidationError):
            DatasetCreate.model_validate(dict(base, dataset_id=bad_id))
    created = DatasetCreate.model_validate(dict(base, dataset_id="ok-id", tags=["b", "a", "b"]))
    assert created.tags == ["a", "b"]


def test_an_update_lists_only_what_it_changes() -> None:
    assert DatasetUpdate(title="New", revision=3).changes() == {"title": "New"}


def test_a_departments_api_key_is_never_in_an_answer() -> None:
    from functions.identity.models import Department

    department = Department.model_validate(
        {"department_id": "transport", "name": "Transport", "created_at": "2026-01-01T00:00:00Z", "usage_key": "k" * 40}
    )
    assert department.usage_key == "k" * 40  # the authorizer reads it
    assert "usage_key" not in department.model_dump()
    assert "k" * 40 not in department.model_dump_json() + repr(department)


def test_data_about_people_names_its_subject_and_is_never_public() -> None:
    """Groups count subjects, so a schema with personal columns says whom rows are about; a public
    dataset is read without a grant, so it would hand out its owner's tokens: refused."""
    pseudonymised = {"type": "string", "x-personal": {"protection": "pseudonymise", "category": "vehicle-plate"}}
    schema: dict[str, Any] = {"type": "object", "properties": {"plate": pseudonymised, "lane": {"type": "integer"}}}
    base = {"dataset_id": "reads", "title": "t", "classification": "internal", "schema": schema}
    with pytest.raises(ValidationError, match="x-subject"):
        DatasetCreate.model_validate(base)
    named = dict(base, schema=dict(schema, **{"x-subject": {"columns": ["plate"]}}))
    assert DatasetCreate.model_validate(named).table_schema.subjects().columns == ["plate"]
    with pytest.raises(ValidationError, match="public dataset holds no pseudonymised column"):
        DatasetCreate.model_validate(dict(named, classification="public"))
    each_row = dict(base, schema=dict(schema, **{"x-subject": {"each_row": True}}))
    assert DatasetCreate.model_validate(each_row).table_schema.subjects().each_row
