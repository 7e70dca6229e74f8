"""The catalog over real HTTP through the SDK, against the embedded stack."""

from __future__ import annotations

import json

import pytest
import requests

from cityshare import CityShareError
from cityshare.signing import request_target
from infra.request_models import BODY_REFUSED
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import SMALL_SCHEMA, city_schema


@pytest.fixture(scope="module")
def transport(stack: RunningStack) -> Member:
    return onboard(stack, unique("transport"), "traffic-control", ["member"])


@pytest.fixture(scope="module")
def health(stack: RunningStack) -> Member:
    return onboard(stack, unique("health"), "beds", ["member"])


def test_owner_creates_and_reads_a_dataset_with_its_schema(transport: Member) -> None:
    dataset_id = unique("traffic-flow")
    schema = city_schema("traffic-flow")
    created = transport.client.create_dataset(
        dataset_id, "Traffic flow", "internal", schema, description="Loops and cameras", tags=["traffic", "mobility"]
    )
    assert created["owner"] == transport.profile.department
    assert created["created_by"] == "traffic-control"
    assert created["revision"] == 1
    fetched = transport.client.get_dataset(dataset_id)
    assert fetched["schema"]["properties"]["avg_speed_kmh"]["x-unit"] == "km/h"
    assert fetched["schema"]["required"] == schema["required"]
    assert fetched["tags"] == ["mobility", "traffic"]


def test_personal_data_markings_survive_the_round_trip(transport: Member) -> None:
    dataset_id = unique("plates")
    transport.client.create_dataset(dataset_id, "Plate reads", "restricted", city_schema("plate-reads"))
    plate = transport.client.get_dataset(dataset_id)["schema"]["properties"]["plate"]
    assert plate["x-personal"] == {"protection": "pseudonymise", "category": "vehicle-plate"}


def test_the_same_dataset_id_cannot_be_created_twice(transport: Member) -> None:
    dataset_id = unique("twice")
    transport.client.create_dataset(dataset_id, "Once", "internal", SMALL_SCHEMA)
    with pytest.raises(CityShareError) as refused:
        transport.client.create_dataset(dataset_id, "Twice", "internal", SMALL_SCHEMA)
    assert (refused.value.status, refused.value.code) == (409, "already_exists")
    assert transport.client.get_dataset(dataset_id)["title"] == "Once"


def test_owner_edits_metadata_and_a_stale_revision_is_refused(transport: Member) -> None:
    dataset_id = unique("editable")
    transport.client.create_dataset(dataset_id, "Draft", "internal", SMALL_SCHEMA)
    edited = transport.client.update_dataset(dataset_id, title="Final", tags=["air"], revision=1)
    assert (edited["title"], edited["revision"], edited["tags"]) == ("Final", 2, ["air"])
    with pytest.raises(CityShareError) as stale:
        transport.client.update_dataset(dataset_id, title="Lost update", revision=1)
    assert (stale.value.status, stale.value.code) == (409, "conflict")
    assert transport.client.get_dataset(dataset_id)["title"] == "Final"


def test_confidential_metadata_is_hidden_and_indistinguishable_from_absent(transport: Member, health: Member) -> None:
    secret_id = unique("beds")
    health.client.create_dataset(secret_id, "Bed occupancy", "confidential", city_schema("hospital-beds"), tags=["health"])
    with pytest.raises(CityShareError) as hidden:
        transport.client.get_dataset(secret_id)
    with pytest.raises(CityShareError) as absent:
        transport.client.get_dataset(unique("never-created"))
    assert (hidden.value.status, hidden.value.code) == (absent.value.status, absent.value.code) == (404, "dataset_not_found")
    assert set(hidden.value.problem) == set(absent.value.problem)
    listed = {d["dataset_id"] for d in transport.client.iter_datasets(owner=health.profile.department)}
    assert secret_id not in listed
    assert secret_id in {d["dataset_id"] for d in health.client.iter_datasets(owner=health.profile.department)}


def test_list_and_search_with_pagination(stack: RunningStack) -> None:
    publisher = onboard(stack, unique("environment"), "network", ["member"])
    reader = onboard(stack, unique("logistics"), "hub", ["member"])
    department = publisher.profile.department
    ids = []
    for number in range(7):
        dataset_id = f"{department}-aq-{number}"
        classification = "public" if number % 2 == 0 else "internal"
        tags = ["air", "environment"] if number < 5 else ["noise"]
        publisher.client.create_dataset(
            dataset_id, f"Station group {number}", classification, SMALL_SCHEMA, description="Hourly PM2.5 readings", tags=tags
        )
        ids.append(dataset_id)
    first = reader.client.list_datasets(owner=department, limit=3)
    assert [d["dataset_id"] for d in first["datasets"]] == ids[:3]
    assert first["next_cursor"]
    pages = [d["dataset_id"] for d in reader.client.iter_datasets(owner=department, limit=3)]
    assert pages == ids
    assert [d["dataset_id"] for d in reader.client.iter_datasets(owner=department, tag="noise")] == ids[5:]
    assert [d["dataset_id"] for d in reader.client.iter_datasets(owner=department, classification="public")] == ids[0::2]
    assert len(list(reader.client.iter_datasets(owner=department, q="pm2.5"))) == 7
    assert [d["dataset_id"] for d in reader.client.iter_datasets(q="station group 6")] == [ids[6]]


def test_a_forged_cursor_is_refused(transport: Member) -> None:
    with pytest.raises(CityShareError) as refused:
        transport.client.list_datasets(cursor="eyJpIjoiYWxsX2RhdGFzZXRzIiwiayI6e319")
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"dataset_id": "../etc", "title": "x", "classification": "public", "schema": SMALL_SCHEMA}, "validation_failed"),
        ({"dataset_id": "ok-id", "title": "x", "classification": "secret", "schema": SMALL_SCHEMA}, "validation_failed"),
        (
            {"dataset_id": "ok-id", "title": "x", "classification": "public", "schema": {"type": "object", "properties": {}}},
            "validation_failed",
        ),
        (
            {
                "dataset_id": "ok-id",
                "title": "x",
                "classification": "public",
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
            },
            "validation_failed",
        ),
        (
            {"dataset_id": "ok-id", "title": "x", "classification": "public", "owner": "someone-else", "schema": SMALL_SCHEMA},
            "validation_failed",
        ),
    ],
)
def test_invalid_datasets_get_a_clear_problem(transport: Member, body: dict[str, object], code: str) -> None:
    with pytest.raises(CityShareError) as refused:
        transport.client.request("POST", "/datasets", body=body)
    assert (refused.value.status, refused.value.code) == (422, code)
    assert refused.value.problem["errors"]


def _raw(member: Member, method: str, path: str, body: bytes) -> requests.Response:
    token = member.client.signer.token(method, request_target(path), body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.request(method, member.client.endpoint + path, data=body, headers=headers, timeout=10)


def test_malformed_json_and_oversized_bodies_are_4xx_problems(transport: Member) -> None:
    malformed = _raw(transport, "POST", "/datasets", b'{"dataset_id": ')
    assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid_request")  # the edge's body model
    assert malformed.json()["detail"] == BODY_REFUSED
    assert malformed.headers["Content-Type"].startswith("application/problem+json")
    huge = _raw(transport, "POST", "/datasets", json.dumps({"title": "x" * 1_100_000}).encode())
    assert (huge.status_code, huge.json()["code"]) == (413, "payload_too_large")


def test_unknown_routes_and_bad_path_ids_are_problems(transport: Member) -> None:
    with pytest.raises(CityShareError) as missing:
        transport.client.request("GET", "/no/such/route")
    assert (missing.value.status, missing.value.code) == (404, "route_not_found")
    for sneaky in ("%2e%2e", "..%2F..%2Fetc", "a" * 300):
        with pytest.raises(CityShareError) as refused:
            transport.client.request("GET", f"/datasets/{sneaky}")
        assert refused.value.status in (404, 422)
        assert "Traceback" not in json.dumps(refused.value.problem)
