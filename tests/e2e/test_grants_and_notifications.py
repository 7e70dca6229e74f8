"""Tag grants, the notifications inbox fed by the triggers function, and downloads, over HTTP
against the embedded stack with the SDK."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cityshare import CityShareError
from cityshare.generators import generate
from tests.conftest import Member, RunningStack, onboard, unique
from tests.datasets import city_schema


def wait_for(member: Member, kind: str, timeout: float = 20.0, **subject: Any) -> dict[str, Any]:
    """The first notification of `kind` whose subject has the given values (the inbox is fed asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in member.client.notifications(limit=100)["notifications"]:
            if item["kind"] == kind and all(item["subject"].get(k) == v for k, v in subject.items()):
                return item
        time.sleep(0.2)
    raise AssertionError(f"no {kind} notification with {subject} for {member.profile.department}")


@pytest.fixture(scope="module")
def city(stack: RunningStack) -> dict[str, Member]:
    transport = unique("transport")
    return {
        "owner": onboard(stack, transport, "traffic-control", ["member"]),
        "steward": onboard(stack, transport, "steward", ["member", "steward"], register=False),
        "consumer": onboard(stack, unique("environment"), "analyst", ["member"]),
        "outsider": onboard(stack, unique("logistics"), "planner", ["member"]),
    }


def publish(member: Member, dataset_id: str, classification: str, tags: list[str], folder: Path, rows: int = 300) -> None:
    member.client.create_dataset(dataset_id, dataset_id.title(), classification, city_schema("traffic-flow"), tags=tags)
    ticket = member.client.upload_file(dataset_id, generate("traffic-flow", rows, folder / f"{dataset_id}.csv"))
    assert member.client.wait_for_upload(dataset_id, ticket["upload_id"], 60)["status"] == "published"


def test_a_tag_grant_covers_datasets_created_later_up_to_its_classification(city: dict[str, Member], tmp_path: Path) -> None:
    owner, steward, consumer, outsider = city["owner"], city["steward"], city["consumer"], city["outsider"]
    grant = steward.client.grant_by_tags(
        consumer.profile.department,
        ["mobility"],
        "Air quality near roads, every mobility dataset",
        "environment-monitoring",
        max_classification="confidential",
    )
    assert grant["dataset_id"] is None and grant["tags"] == ["mobility"]
    covered, too_secret, untagged = unique("flow"), unique("cameras"), unique("parking")
    publish(owner, covered, "confidential", ["mobility", "traffic"], tmp_path)  # created after the grant
    publish(owner, too_secret, "restricted", ["mobility"], tmp_path)
    publish(owner, untagged, "confidential", ["traffic"], tmp_path)
    assert consumer.client.read_table(covered).num_rows == 300
    listed = {d["dataset_id"] for d in consumer.client.iter_datasets(owner=owner.profile.department)}
    assert covered in listed and too_secret not in listed and untagged not in listed
    for hidden in (too_secret, untagged):
        with pytest.raises(CityShareError) as refused:
            consumer.client.data_access(hidden)
        assert refused.value.status == 404
    with pytest.raises(CityShareError) as other:
        outsider.client.data_access(covered)
    assert other.value.status == 404
    assert grant["grant_id"] in {g["grant_id"] for g in steward.client.grants(covered)}
    assert grant["grant_id"] in {g["grant_id"] for g in consumer.client.department_grants("received")}
    assert grant["grant_id"] in {g["grant_id"] for g in steward.client.department_grants("given")}
    steward.client.revoke_department_grant(grant["grant_id"])
    with pytest.raises(CityShareError) as revoked:
        consumer.client.data_access(covered)
    assert (revoked.value.status, revoked.value.code) == (403, "grant_revoked") and grant["grant_id"] in revoked.value.detail
    revoked_note = wait_for(consumer, "grant.revoked", grant_id=grant["grant_id"])
    assert owner.profile.department in revoked_note["message"]


def test_only_stewards_give_list_or_revoke_department_grants(city: dict[str, Member]) -> None:
    owner, consumer = city["owner"], city["consumer"]
    with pytest.raises(CityShareError) as member_grants:
        owner.client.grant_by_tags(consumer.profile.department, ["mobility"], "Not a steward granting", "research")
    assert member_grants.value.status == 403
    with pytest.raises(CityShareError) as member_lists:
        owner.client.department_grants("given")
    assert member_lists.value.status == 403
    steward = city["steward"]
    grant = steward.client.grant_by_tags(consumer.profile.department, ["mobility"], "Revocation by the wrong party", "research")
    for attempt in (owner, consumer):
        with pytest.raises(CityShareError) as refused:
            attempt.client.revoke_department_grant(grant["grant_id"])
        assert refused.value.status in (403, 404)
    with pytest.raises(CityShareError) as restricted_terms:
        steward.client.request(
            "POST",
            "/grants",
            body={
                "grantee_department": consumer.profile.department,
                "tags": ["mobility"],
                "purpose": "Columns cannot be limited on a tag grant",
                "purpose_category": "research",
                "terms": {"columns": ["segment_id"]},
            },
        )
    assert restricted_terms.value.status == 422 and restricted_terms.value.code == "validation_failed"


def test_requests_decisions_and_grants_reach_the_inboxes_once(city: dict[str, Member], tmp_path: Path) -> None:
    owner, steward, consumer = city["owner"], city["steward"], city["consumer"]
    dataset_id = unique("counts")
    publish(owner, dataset_id, "internal", ["traffic"], tmp_path, rows=50)
    asked = consumer.client.request_access(
        dataset_id, "Hourly traffic counts for an emissions model", "environment-monitoring", "public-task", "2027-06-30"
    )
    filed = wait_for(steward, "access-request.filed", access_request_id=asked["request_id"])
    assert consumer.profile.department in filed["message"]
    grant = steward.client.approve_request(dataset_id, asked["request_id"], {"columns": ["segment_id", "avg_speed_kmh"]})
    wait_for(consumer, "access-request.approved", access_request_id=asked["request_id"], grant_id=grant["grant_id"])
    wait_for(consumer, "grant.granted", grant_id=grant["grant_id"])
    kinds = [
        n["kind"]
        for n in consumer.client.notifications(limit=100)["notifications"]
        if n["subject"].get("grant_id") == grant["grant_id"]
    ]
    assert sorted(kinds) == ["access-request.approved", "grant.granted"]  # once each
    # The owner's members read their own inbox; the consumer cannot read the owner's.
    assert owner.client.notifications()["notifications"]
    assert all(n["department"] == consumer.profile.department for n in consumer.client.notifications(limit=100)["notifications"])


def test_following_the_inbox_returns_only_what_came_later(city: dict[str, Member], tmp_path: Path) -> None:
    steward, consumer = city["steward"], city["consumer"]
    cursor = consumer.client.notifications(limit=1)["next_cursor"]
    grant = steward.client.grant_by_tags(consumer.profile.department, ["weather"], "Follow the inbox in a test", "research")
    deadline = time.monotonic() + 20
    seen: list[dict[str, Any]] = []
    for item in consumer.client.follow_notifications(after=cursor, poll_seconds=0.2, stop=lambda: time.monotonic() > deadline):
        seen.append(item)
        if item["subject"].get("grant_id") == grant["grant_id"]:
            break
    assert seen and seen[-1]["kind"] == "grant.granted"
    assert all(item["notification_id"] > str(cursor) for item in seen)


def test_download_saves_the_grants_view_as_parquet_with_progress(city: dict[str, Member], tmp_path: Path) -> None:
    owner, steward, consumer = city["owner"], city["steward"], city["consumer"]
    dataset_id = unique("segments")
    publish(owner, dataset_id, "confidential", ["traffic"], tmp_path, rows=1000)
    steward.client.grant(
        dataset_id,
        consumer.profile.department,
        "Segments with their speeds only",
        "planning",
        terms={
            "columns": ["segment_id", "avg_speed_kmh"],
            "row_filter": {"condition": {"column": "avg_speed_kmh", "op": "lt", "value": 30}},
        },
    )
    progress: list[tuple[int, int]] = []
    files = consumer.client.download(dataset_id, tmp_path / "out", progress=lambda done, total: progress.append((done, total)))
    table = pq.read_table(files[0])
    assert table.column_names == ["segment_id", "avg_speed_kmh"]
    assert table.num_rows > 0 and max(table.column("avg_speed_kmh").to_pylist()) < 30
    assert progress and progress[-1][0] == progress[-1][1] == files[0].stat().st_size
    assert not list((tmp_path / "out").glob("*.partial"))


def test_a_suspended_department_reads_no_inbox_subscriptions_or_requests(stack: RunningStack) -> None:
    department = unique("logistics")
    steward = onboard(stack, department, "steward", ["member", "steward"])
    assert steward.client.notifications()["notifications"] == [] and steward.client.subscriptions() == []
    admin = stack.admin()
    admin.set_department_status(department, "suspended")
    try:
        for attempt in (
            steward.client.notifications,
            steward.client.subscriptions,
            steward.client.pending_requests,
            lambda: steward.client.department_grants("received"),
            lambda: steward.client.subscribe(tag="traffic"),
        ):
            with pytest.raises(CityShareError) as refused:
                attempt()
            assert refused.value.status == 403
    finally:
        admin.set_department_status(department, "active")
    assert steward.client.pending_requests() == []
