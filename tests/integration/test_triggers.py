"""The triggers function against moto: events through the bus and the events queue into inboxes and
onto the notifications topic, once per event and department, whatever the deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.core.events import AccessRequestChanged, EventPublisher, GrantChanged
from functions.core.settings import Settings
from functions.handlers import triggers
from functions.notifications.repository import NotificationRepository
from functions.sharing.models import AccessRequest, Grant
from functions.sharing.repository import SharingRepository
from infra.local.lambdas import LocalContext
from infra.local.pump import sqs_event
from tests.integration.conftest import Aws

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "events"
AT = "2026-11-26T10:00:00+00:00"


@pytest.fixture
def handler(settings: Settings) -> Iterator[Any]:
    triggers.triggers.cache_clear()
    record_in_catalog(settings)
    yield triggers.handler
    triggers.triggers.cache_clear()


def record_in_catalog(settings: Settings, revoked: bool = True) -> None:
    """The grant and the access request the events below are about: the triggers function checks
    each event against the catalog before anyone is told."""
    sharing = SharingRepository(settings.sharing_table)
    event = grant_changed()
    grant = Grant(
        grant_id=event.grant_id,
        dataset_id="traffic-flow",
        owner="transport",
        grantee_department="environment",
        purpose="Pollution near congested roads",
        purpose_category="environment-monitoring",
        created_by="steward",
        created_at=AT,
    )
    sharing.put_grant(grant)
    if revoked:
        sharing.revoke(grant, "steward", "2026-11-26T11:00:00+00:00")
    filed = request_filed()
    sharing.put_request(
        AccessRequest(
            request_id=filed.access_request_id,
            dataset_id="traffic-flow",
            owner="transport",
            requester_department="environment",
            requester_principal="analyst",
            purpose="Pollution near congested roads",
            purpose_category="environment-monitoring",
            legal_basis="public-task",
            columns=["segment_id"],
            until="2027-12-31T00:00:00+00:00",
            created_at=AT,
        )
    )


def grant_changed(change: str = "granted", grant_id: str = "g" + "1" * 24, at: str = AT) -> GrantChanged:
    return GrantChanged(
        change=change,  # type: ignore[arg-type]
        grant_id=grant_id,
        owner="transport",
        grantee_department="environment",
        dataset_id="traffic-flow",
        by="steward",
        at=at,
    )


def request_filed() -> AccessRequestChanged:
    return AccessRequestChanged(
        change="filed",
        access_request_id="r" + "2" * 24,
        dataset_id="traffic-flow",
        owner="transport",
        requester_department="environment",
        requester_principal="analyst",
        purpose_category="environment-monitoring",
        by="analyst",
        at=AT,
    )


def delivered(moto_aws: Aws) -> dict[str, Any]:
    """The events queue's messages as one SQS event for the function (as Lambda's mapping builds it)."""
    sqs = moto_aws.client("sqs")
    url = moto_aws.queue_urls["events"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs_event(messages, arn)


def inbox(settings: Settings, department: str) -> list[Any]:
    return NotificationRepository(settings.notifications_table).page(department, None, 100)


def test_every_event_on_the_bus_matches_its_published_schema(moto_aws: Aws, settings: Settings) -> None:
    EventPublisher(settings.event_bus).publish(grant_changed(), request_filed(), grant_changed("revoked"))
    envelopes = [json.loads(r["body"]) for r in delivered(moto_aws)["Records"]]
    assert len(envelopes) == 3
    for envelope in envelopes:
        schema = json.loads((SCHEMAS / f"{envelope['detail-type']}.json").read_text())
        jsonschema.validate(envelope["detail"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"change": "granted"}, json.loads((SCHEMAS / "GrantChanged.json").read_text()))


def test_a_redelivered_batch_notifies_each_department_once(moto_aws: Aws, settings: Settings, handler: Any) -> None:
    EventPublisher(settings.event_bus).publish(grant_changed(), request_filed())
    event = delivered(moto_aws)
    for _ in range(2):  # SQS and EventBridge deliver at least once
        assert handler(event, LocalContext("triggers", 1024)) == {"batchItemFailures": []}
    grantee = inbox(settings, "environment")
    owner = inbox(settings, "transport")
    assert [n.kind for n in grantee] == ["grant.granted"] and [n.kind for n in owner] == ["access-request.filed"]
    assert grantee[0].subject["grant_id"] == "g" + "1" * 24 and "transport granted" in grantee[0].message


def test_events_out_of_order_each_leave_their_notification(moto_aws: Aws, settings: Settings, handler: Any) -> None:
    EventPublisher(settings.event_bus).publish(grant_changed("revoked", at="2026-11-26T11:00:00+00:00"))
    handler(delivered(moto_aws), LocalContext("triggers", 1024))
    EventPublisher(settings.event_bus).publish(grant_changed("granted"))
    handler(delivered(moto_aws), LocalContext("triggers", 1024))
    stored = inbox(settings, "environment")
    # Kept in arrival order (what a follower's cursor needs), each with when it happened.
    assert [(n.kind, n.at) for n in stored] == [("grant.revoked", "2026-11-26T11:00:00+00:00"), ("grant.granted", AT)]


def test_unknown_or_malformed_events_are_dropped_without_failing_the_batch(
    moto_aws: Aws, settings: Settings, handler: Any
) -> None:
    events = moto_aws.client("events")
    events.put_events(
        Entries=[
            {
                "EventBusName": settings.event_bus,
                "Source": "cityshare",
                "DetailType": "GrantChanged",
                "Detail": json.dumps({"x": 1}),
            },
        ]
    )
    EventPublisher(settings.event_bus).publish(grant_changed())
    assert handler(delivered(moto_aws), LocalContext("triggers", 1024)) == {"batchItemFailures": []}
    assert [n.kind for n in inbox(settings, "environment")] == ["grant.granted"]


def test_departments_receive_only_their_notifications_on_the_topic(moto_aws: Aws, settings: Settings, handler: Any) -> None:
    sqs, sns = moto_aws.client("sqs"), moto_aws.client("sns")
    url = sqs.create_queue(QueueName="environment-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=settings.notifications_topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"FilterPolicy": json.dumps({"department": ["environment"]}), "RawMessageDelivery": "true"},
    )
    EventPublisher(settings.event_bus).publish(grant_changed(), request_filed())
    handler(delivered(moto_aws), LocalContext("triggers", 1024))
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["kind"] for m in received] == ["grant.granted"]


def test_a_failed_publish_is_retried_not_lost(
    moto_aws: Aws, settings: Settings, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    EventPublisher(settings.event_bus).publish(grant_changed())
    event = delivered(moto_aws)
    service = triggers.triggers()._notifications

    def unavailable(**_: Any) -> None:
        raise RuntimeError("SNS is unavailable")

    published: list[str] = []
    monkeypatch.setattr(service, "_sns", type("Down", (), {"publish": staticmethod(unavailable)})())
    with pytest.raises(BatchProcessingError):  # every record failed: Lambda retries the batch
        handler(event, LocalContext("triggers", 1024))
    assert [n.kind for n in inbox(settings, "environment")] == ["grant.granted"]  # stored, not yet pushed
    monkeypatch.setattr(service, "_sns", type("Up", (), {"publish": staticmethod(lambda **m: published.append(m["Message"]))})())
    assert handler(event, LocalContext("triggers", 1024)) == {"batchItemFailures": []}
    assert handler(event, LocalContext("triggers", 1024)) == {"batchItemFailures": []}  # once more: nothing is told twice
    assert [n.kind for n in inbox(settings, "environment")] == ["grant.granted"]
    assert [json.loads(m)["kind"] for m in published] == ["grant.granted"]


def test_events_the_catalog_does_not_confirm_tell_nobody(moto_aws: Aws, settings: Settings, handler: Any) -> None:
    forged = grant_changed(grant_id="g" + "9" * 24)
    EventPublisher(settings.event_bus).publish(forged, request_filed().model_copy(update={"owner": "health"}))
    assert handler(delivered(moto_aws), LocalContext("triggers", 1024)) == {"batchItemFailures": []}
    assert inbox(settings, "environment") == [] and inbox(settings, "health") == []
