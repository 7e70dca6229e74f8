"""Every upload reaches a terminal state with a report, whatever fails inside ingest: `failed` with a
reason, nothing half-written, the message in the DLQ (at once when retrying cannot help, after the
last attempt when it might), and an upload whose function was killed reported `failed` too."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.settings import Settings
from functions.handlers import wiring
from functions.ingest.profile import ProfileBuilder
from functions.ingest.repository import IngestRepository
from functions.ingest.service import FAILED_TAG, IngestService, UploadFailed
from functions.ingest.uploads import UploadService
from infra.spec import FAILED_UPLOAD_TAG
from tests.integration.conftest import CSV, Aws, land, versions
from tests.unit.test_policies import caller


def upload_of(settings: Settings, key: str) -> Any:
    return IngestRepository(settings.catalog_table).get_upload("air-quality", key.split("/")[3])


def stored(moto_aws: Aws, settings: Settings, prefix: str) -> list[str]:
    listed = moto_aws.client("s3").list_objects_v2(Bucket=settings.data_bucket, Prefix=prefix).get("Contents", [])
    return [o["Key"] for o in listed]


def test_a_date_column_is_published_not_left_processing(moto_aws: Aws, settings: Settings, service: IngestService) -> None:
    schema = {"type": "object", "properties": {"station_id": {"type": "string"}, "day": {"type": "string", "format": "date"}}}
    dataset = CatalogRepository(settings.catalog_table).get("air-quality")
    assert dataset is not None
    CatalogRepository(settings.catalog_table).create(
        Dataset.model_validate(dict(dataset.model_dump(by_alias=True), dataset_id="daily-notes", schema=schema))
    )
    key = land(moto_aws, settings, b"station_id,day\nAQ-1,2026-11-04\n").replace("air-quality", "daily-notes")
    moto_aws.client("s3").put_object(Bucket=settings.data_bucket, Key=key, Body=b"station_id,day\nAQ-1,2026-11-04\n")
    repository = IngestRepository(settings.catalog_table)
    original = repository.get_upload("air-quality", key.split("/")[3])
    repository.create_upload(original.model_copy(update={"dataset_id": "daily-notes", "landing_key": key}))  # type: ignore[union-attr]
    assert service.process(settings.data_bucket, key).outcome == "published"


def test_a_step_that_fails_ends_the_upload_failed_with_nothing_half_written(
    moto_aws: Aws, settings: Settings, service: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = land(moto_aws, settings)
    fixed = ProfileBuilder.build

    def broken(self: ProfileBuilder) -> Any:
        raise ValueError("Unsupported cast from date32[day] to int64")

    monkeypatch.setattr(ProfileBuilder, "build", broken)
    with pytest.raises(UploadFailed) as failed:
        service.process(settings.data_bucket, key, attempt=1, max_attempts=5)
    assert not failed.value.retry  # retrying cannot mend it: the message goes to the DLQ at once
    upload = upload_of(settings, key)
    assert upload.status == "failed" and upload.report.file_error == "processing_failed"
    assert "profile step failed (ValueError" in upload.report.issues[0].message
    assert versions(service) == [] and not stored(moto_aws, settings, "curated/") and not stored(moto_aws, settings, "vault/")
    tags = moto_aws.client("s3").get_object_tagging(Bucket=settings.data_bucket, Key=key)["TagSet"]
    assert {(t["Key"], t["Value"]) for t in tags} == {FAILED_TAG} and FAILED_TAG == FAILED_UPLOAD_TAG
    monkeypatch.setattr(ProfileBuilder, "build", fixed)  # after a fix, the message redriven from the DLQ publishes it
    assert service.process(settings.data_bucket, key).outcome == "published"


def test_a_cause_that_may_pass_is_retried_then_ends_failed_on_the_last_attempt(
    moto_aws: Aws, settings: Settings, service: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = land(moto_aws, settings)

    def throttled(*args: Any, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate"}}, "PutObject")

    monkeypatch.setattr(service._scopes.s3("environment"), "upload_file", throttled)
    with pytest.raises(UploadFailed) as first:
        service.process(settings.data_bucket, key, attempt=1, max_attempts=5)
    assert first.value.retry and upload_of(settings, key).status == "processing"
    assert "attempt 1 of 5" in upload_of(settings, key).report.issues[0].message
    with pytest.raises(UploadFailed) as last:
        service.process(settings.data_bucket, key, attempt=5, max_attempts=5)
    assert last.value.retry and upload_of(settings, key).status == "failed"  # SQS moves the message to the DLQ


def test_a_failed_message_goes_to_the_dead_letter_queue_intact(
    moto_aws: Aws, settings: Settings, service: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.handlers import ingest as ingest_handler
    from infra.local.lambdas import LocalContext
    from infra.local.pump import sqs_event

    ingest_handler.ingest_service.cache_clear()
    monkeypatch.setattr(ProfileBuilder, "build", lambda self: (_ for _ in ()).throw(ValueError("boom")))
    key = land(moto_aws, settings)
    body = json.dumps(
        {
            "Records": [
                {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": settings.data_bucket}, "object": {"key": key}}}
            ]
        }
    )
    event = sqs_event(
        [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": body, "Attributes": {"ApproximateReceiveCount": "1"}}],
        "arn:aws:sqs:eu-west-1:123456789012:ingest",
    )
    response = ingest_handler.handler(event, LocalContext("ingest", 1024, timeout_seconds=300))
    assert response["batchItemFailures"] == []  # not retried: it cannot succeed
    sqs = moto_aws.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.ingest_dead_letters)["QueueUrl"]
    dead = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"]).get("Messages", [])
    assert [m["Body"] for m in dead] == [body] and "profile step failed" in dead[0]["MessageAttributes"]["cityshare-failure"][
        "StringValue"
    ]
    assert upload_of(settings, key).status == "failed"
    ingest_handler.ingest_service.cache_clear()


def test_an_upload_whose_function_was_killed_is_reported_failed(
    moto_aws: Aws, settings: Settings, service: IngestService
) -> None:
    from functions.audit.chain import AuditLog
    from functions.catalog.service import CatalogService
    from functions.policy.access import AccessControl
    from functions.policy.engine import PolicyEngine

    key = land(moto_aws, settings)
    upload = upload_of(settings, key)
    IngestRepository(settings.catalog_table).mark_processing(upload, datetime.now(UTC).isoformat(timespec="seconds"), "akilled")
    access = AccessControl(PolicyEngine(settings.policies_dir), AuditLog(settings.audit_table))
    later = datetime.now(UTC) + timedelta(seconds=settings.ingest_stalled_after_seconds + 60)
    uploads = UploadService(
        CatalogService(CatalogRepository(settings.catalog_table), access),
        IngestRepository(settings.catalog_table),
        settings.data_bucket,
        wiring.scopes(),
        wiring.department_keys(),
        clock=lambda: later,
        stalled_after_seconds=settings.ingest_stalled_after_seconds,
    )
    seen = uploads.get_upload(caller("environment"), "air-quality", upload.upload_id)
    assert seen.status == "failed" and seen.report is not None and seen.report.issues[0].rule == "stalled"
    assert CSV  # the object is still there for a redrive
