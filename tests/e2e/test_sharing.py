"""Sharing over HTTP: a request narrowed by the owner's steward, a governed read of the view,
revocation taking effect on the next request, and the refusals around them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cityshare import CityShareError
from cityshare.generators import generate
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import city_schema


@pytest.fixture(scope="module")
def parties(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    transport = unique("transport")
    owner = onboard(stack, transport, "traffic-control", ["member"])
    steward = onboard(stack, transport, "steward", ["member", "steward"], register=False)
    consumer = onboard(stack, unique("environment"), "analyst", ["member"])
    dataset_id = unique("traffic-flow")
    owner.client.create_dataset(dataset_id, "Traffic flow", "confidential", city_schema("traffic-flow"))
    path = generate("traffic-flow", 2000, tmp_path_factory.mktemp("data") / "flow.csv")
    ticket = owner.client.upload_file(dataset_id, path)
    assert owner.client.wait_for_upload(dataset_id, ticket["upload_id"], 60)["status"] == "published"
    return {"owner": owner, "steward": steward, "consumer": consumer, "dataset": dataset_id}


def test_a_narrowed_grant_reads_only_its_view_and_revocation_stops_it(parties: dict[str, object]) -> None:
    owner, steward, consumer = parties["owner"], parties["steward"], parties["consumer"]
    dataset_id = str(parties["dataset"])
    assert isinstance(owner, Member) and isinstance(steward, Member) and isinstance(consumer, Member)
    with pytest.raises(CityShareError) as hidden:
        consumer.client.data_access(dataset_id)
    assert hidden.value.status == 404  # confidential and not granted: not even its existence
    grant = steward.client.grant(
        dataset_id,
        consumer.profile.department,
        "Study pollution near congested roads",
        "environment-monitoring",
        terms={
            "columns": ["segment_id", "district", "measured_at", "avg_speed_kmh", "camera_id"],
            "row_filter": {"condition": {"column": "district", "op": "eq", "value": "Centre"}},
            "masked_columns": ["camera_id"],
        },
    )
    table = consumer.client.read_table(dataset_id)
    assert table.column_names == ["segment_id", "district", "measured_at", "avg_speed_kmh", "camera_id"]
    assert set(table.column("district").to_pylist()) == {"Centre"} and table.num_rows > 0
    assert not any(str(v).startswith("CAM-") for v in table.column("camera_id").to_pylist() if v)
    access = consumer.client.data_access(dataset_id)
    assert access["restricted"] and "/views/" in access["files"][0]["url"]
    owner_table = owner.client.read_table(dataset_id)
    assert owner_table.num_rows == 2000 and "occupancy_pct" in owner_table.column_names
    steward.client.revoke_grant(dataset_id, grant["grant_id"])
    with pytest.raises(CityShareError) as revoked:
        consumer.client.data_access(dataset_id)
    # The grantee knew of the dataset: it is told its grant ended, and when, not "not found".
    assert revoked.value.status == 403 and revoked.value.code == "grant_revoked" and grant["grant_id"] in revoked.value.detail
    with pytest.raises(CityShareError) as twice:
        steward.client.revoke_grant(dataset_id, grant["grant_id"])
    assert twice.value.status == 409
    reads = [e for e in steward.client.iter_audit() if e["action"] == "ReadData"]
    assert any(e["decision"] == "allow" and e["details"]["grant"] == grant["grant_id"] for e in reads)
    after_revocation = [e for e in steward.client.iter_audit() if e["actor_department"] == consumer.profile.department]
    assert after_revocation[-1]["decision"] == "deny"  # refused, and the refusal is in the owner's chain


def test_an_access_request_is_approved_narrowed_or_denied_by_a_steward(stack: RunningStack, parties: dict[str, object]) -> None:
    owner, steward = parties["owner"], parties["steward"]
    assert isinstance(owner, Member) and isinstance(steward, Member)
    public_id = unique("counts")
    owner.client.create_dataset(public_id, "Counts", "internal", city_schema("traffic-flow"))
    consumer = onboard(stack, unique("health"), "epidemiology", ["member"])
    asked = consumer.client.request_access(
        public_id,
        "Road injuries and traffic volume study",
        "public-health",
        "public-task",
        "2027-06-30",
        columns=["segment_id", "vehicle_count", "camera_id"],
    )
    with pytest.raises(CityShareError) as not_steward:
        owner.client.approve_request(public_id, asked["request_id"])
    assert not_steward.value.status == 403
    pending = [r["request_id"] for r in steward.client.pending_requests()]
    assert asked["request_id"] in pending
    with pytest.raises(CityShareError) as widened:
        steward.client.approve_request(public_id, asked["request_id"], terms={"columns": ["segment_id", "occupancy_pct"]})
    assert widened.value.status == 400
    grant = steward.client.approve_request(
        public_id, asked["request_id"], terms={"columns": ["segment_id", "vehicle_count"], "expires_at": "2027-01-31"}
    )
    assert grant["terms"]["columns"] == ["segment_id", "vehicle_count"] and grant["terms"]["expires_at"].startswith("2027-01-31")
    with pytest.raises(CityShareError) as decided:
        steward.client.deny_request(public_id, asked["request_id"], "too late")
    assert decided.value.status == 409
    other = onboard(stack, unique("police"), "analyst", ["member"])
    plates = other.client.request_access(
        public_id, "Find vehicles of interest on all roads", "public-safety", "none", "2027-01-01"
    )
    denied = steward.client.deny_request(public_id, plates["request_id"], "No legal basis given")
    assert denied["status"] == "denied" and denied["decision"]["reason"] == "No legal basis given"


def test_stewards_of_another_department_cannot_grant(stack: RunningStack, parties: dict[str, object]) -> None:
    dataset_id = str(parties["dataset"])
    outsider = onboard(stack, unique("housing"), "lead", ["member", "steward"])
    with pytest.raises(CityShareError) as refused:
        outsider.client.grant(dataset_id, outsider.profile.department, "Let me in to everything", "other")
    assert refused.value.status == 404


def test_the_cli_grants_lists_reads_and_revokes(stack: RunningStack, parties: dict[str, object], tmp_path: Path) -> None:
    from tests.e2e.test_cli_and_demo import cityshare

    steward, owner = parties["steward"], parties["owner"]
    assert isinstance(steward, Member) and isinstance(owner, Member)
    reader = onboard(stack, unique("logistics"), "planner", ["member"])
    dataset_id = str(parties["dataset"])
    steward_profile, reader_profile = tmp_path / "steward.json", tmp_path / "reader.json"
    steward.profile.save(steward_profile)
    reader.profile.save(reader_profile)
    (tmp_path / "terms.json").write_text('{"columns": ["segment_id", "vehicle_count"]}')
    granted = json.loads(
        cityshare(
            "--json",
            "access",
            "grant",
            dataset_id,
            "--department",
            reader.profile.department,
            "--purpose",
            "Delivery route planning by segment",
            "--category",
            "planning",
            "--terms",
            str(tmp_path / "terms.json"),
            profile=steward_profile,
        ).stdout
    )
    assert granted["grant_id"] in cityshare("access", "grants", dataset_id, profile=steward_profile).stdout
    saved = cityshare("read", dataset_id, "--out", str(tmp_path / "view.parquet"), profile=reader_profile)
    assert "['segment_id', 'vehicle_count']" in saved.stdout
    cityshare("access", "revoke", dataset_id, granted["grant_id"], profile=steward_profile)
    assert cityshare("read", dataset_id, profile=reader_profile, check=False).returncode == 1


def test_a_retried_call_with_its_idempotency_key_is_done_once(parties: dict[str, object]) -> None:
    """A steward's client that lost the answer retries with the same key: one grant, the same answer;
    the key used for another body is refused, not guessed."""
    steward, consumer = parties["steward"], parties["consumer"]
    assert isinstance(steward, Member) and isinstance(consumer, Member)
    dataset_id = str(parties["dataset"])
    body = {
        "grantee_department": consumer.profile.department,
        "purpose": "Retried after a lost answer",
        "purpose_category": "environment-monitoring",
        "legal_basis": "public-task",
        "terms": {"columns": ["segment_id", "avg_speed_kmh"]},
    }
    path = f"/datasets/{dataset_id}/grants"
    first = steward.client.request("POST", path, body=body, idempotency_key="grant-retried-1")
    again = steward.client.request("POST", path, body=body, idempotency_key="grant-retried-1")
    assert again == first
    mine = [g for g in steward.client.grants(dataset_id) if g["purpose"] == "Retried after a lost answer"]
    assert [g["grant_id"] for g in mine] == [first["grant_id"]]
    with pytest.raises(CityShareError) as reused:
        steward.client.request("POST", path, body=dict(body, purpose="Another call, same key"), idempotency_key="grant-retried-1")
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")
    steward.client.revoke_grant(dataset_id, first["grant_id"])


def test_honest_mistakes_get_honest_answers(stack: RunningStack, parties: dict[str, object]) -> None:
    """A typo in a department is not a grant; no legal basis is assumed for data about people; an
    expired grant says so, to the grantee and in the listings."""
    steward, consumer = parties["steward"], parties["consumer"]
    assert isinstance(steward, Member) and isinstance(consumer, Member)
    dataset_id = str(parties["dataset"])
    with pytest.raises(CityShareError) as typo:
        steward.client.grant(dataset_id, "enviroment-typo", "Study pollution near congested roads", "research")
    assert typo.value.status == 404 and typo.value.code == "department_not_found"
    plain = steward.client.grant(dataset_id, consumer.profile.department, "Study pollution near congested roads", "research")
    assert plain["legal_basis"] is None  # none was given, none is claimed
    steward.client.revoke_grant(dataset_id, plain["grant_id"])

    plates = unique("plate-reads")
    steward.client.create_dataset(plates, "Plate reads", "restricted", city_schema("plate-reads"))
    with pytest.raises(CityShareError) as basis:
        steward.client.grant(plates, consumer.profile.department, "Match reads with fines for enforcement", "public-safety")
    assert basis.value.status == 400 and "legal basis" in basis.value.detail

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat(timespec="seconds")
    brief = steward.client.grant(
        dataset_id, consumer.profile.department, "A short look at congestion", "research", terms={"expires_at": soon}
    )
    assert consumer.client.data_access(dataset_id)["grant_id"] == brief["grant_id"]
    time.sleep(3)
    with pytest.raises(CityShareError) as expired:
        consumer.client.data_access(dataset_id)
    assert expired.value.status == 403 and expired.value.code == "grant_expired" and soon[:19] in expired.value.detail
    listed = {g["grant_id"]: g["status"] for g in consumer.client.department_grants("received")}
    assert listed[brief["grant_id"]] == "expired" and listed[plain["grant_id"]] == "revoked"


def test_the_owner_reads_its_own_encrypted_values_and_grants_itself_nothing(stack: RunningStack) -> None:
    city = unique("city-management")
    owner = onboard(stack, city, "steward", ["member", "steward"])
    dataset_id = unique("service-requests")
    owner.client.create_dataset(dataset_id, "Service requests", "confidential", city_schema("service-requests"))
    record = {
        "request_id": "SR-00000001",
        "opened_at": "2026-11-04T08:00:00Z",
        "category": "pothole",
        "district": "Harbour",
        "address": "12 Market Street",
        "latitude": 51.45,
        "longitude": -2.58,
        "status": "open",
    }
    upload = owner.client.push_records(dataset_id, [record])
    assert owner.client.wait_for_upload(dataset_id, upload["upload_id"], 60)["status"] == "published"
    stored = owner.client.read_table(dataset_id)
    assert stored.column("address")[0].as_py() != "12 Market Street"  # encrypted at rest
    clear = owner.client.read_table(dataset_id, decrypt=["address"])
    assert clear.column("address").to_pylist() == ["12 Market Street"]
    entry = [e for e in owner.client.iter_audit(city) if e["action"] == "ReadData"][-1]
    assert entry["details"]["decrypt"] == ["address"]
    with pytest.raises(CityShareError) as not_encrypted:
        owner.client.read_table(dataset_id, decrypt=["district"])
    assert not_encrypted.value.status == 400
    with pytest.raises(CityShareError) as itself:
        owner.client.grant(dataset_id, city, "Reading our own addresses back", "operations", legal_basis="public-task")
    assert itself.value.status == 400 and "own right" in itself.value.detail
