"""The ingest function against moto: exactly one version per upload, whatever the deliveries."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from functions.audit.chain import AuditLog
from functions.catalog.repository import CatalogRepository
from functions.core.settings import Settings
from functions.handlers import wiring
from functions.ingest.models import UploadRequest
from functions.ingest.repository import IngestRepository
from functions.ingest.service import IngestService
from tests.faults import FunctionStopped
from tests.integration.conftest import CSV, Aws, assert_matches_published_schema, land, published_events, versions


def test_an_upload_becomes_one_version_with_its_event(moto_aws: Aws, settings: Settings, service: IngestService) -> None:
    result = service.process(settings.data_bucket, land(moto_aws, settings))
    assert (result.outcome, result.version) == ("published", 1)
    version = service._uploads.get_version("air-quality", 1)
    assert version.rows == 2 and version.profile.columns["pm25"].max == 80.1
    head = moto_aws.client("s3").head_object(Bucket=settings.data_bucket, Key=version.files[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    events = published_events(moto_aws)
    assert [e["detail-type"] for e in events] == ["DatasetVersionPublished"]
    assert events[0]["detail"]["version"] == 1 and events[0]["detail"]["rows"] == 2
    assert_matches_published_schema(events[0])


def test_the_same_event_delivered_twice_makes_one_version(moto_aws: Aws, settings: Settings, service: IngestService) -> None:
    key = land(moto_aws, settings)
    assert service.process(settings.data_bucket, key).outcome == "published"
    assert service.process(settings.data_bucket, key).outcome == "duplicate"
    assert versions(service) == [1]
    assert len(published_events(moto_aws)) == 1


def test_two_deliveries_at_once_make_one_version(
    moto_aws: Aws, settings: Settings, service: IngestService, atomic_conditional_writes: None
) -> None:
    key = land(moto_aws, settings)
    outcomes: list[str] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(service.process(settings.data_bucket, key).outcome)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate", "published"]
    assert versions(service) == [1]


def test_a_crash_before_the_commit_converges_on_retry(
    moto_aws: Aws, settings: Settings, service: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = land(moto_aws, settings)
    original = service._uploads.commit_version

    def crash(*args: Any, **kwargs: Any) -> None:
        raise FunctionStopped("the function timed out after writing the Parquet file")

    monkeypatch.setattr(service._uploads, "commit_version", crash)
    with pytest.raises(FunctionStopped):
        service.process(settings.data_bucket, key)
    assert versions(service) == []  # nothing visible: the Parquet file has no catalog entry
    monkeypatch.setattr(service._uploads, "commit_version", original)
    assert service.process(settings.data_bucket, key).outcome == "published"
    assert versions(service) == [1]
    curated = moto_aws.client("s3").list_objects_v2(Bucket=settings.data_bucket, Prefix="curated/environment/air-quality/")[
        "Contents"
    ]
    assert len(curated) == 1  # the retry took the upload over and removed the dead attempt's file


def test_uploads_get_consecutive_versions(moto_aws: Aws, settings: Settings, service: IngestService) -> None:
    for _ in range(3):
        service.process(settings.data_bucket, land(moto_aws, settings))
    assert versions(service) == [3, 2, 1]


def test_a_rejected_file_keeps_its_original_and_gets_a_report(moto_aws: Aws, settings: Settings, service: IngestService) -> None:
    key = land(moto_aws, settings, b"station_id,measured_at,pm25\nAQ-001,not-a-time,x\n")
    assert service.process(settings.data_bucket, key).outcome == "rejected"
    s3 = moto_aws.client("s3")
    assert s3.get_object(Bucket=settings.data_bucket, Key=key)["Body"].read().startswith(b"station_id")
    upload_id = key.split("/")[3]
    listed = s3.list_objects_v2(Bucket=settings.data_bucket, Prefix=f"quarantine/environment/air-quality/{upload_id}/")
    (report_key,) = [o["Key"] for o in listed["Contents"] if o["Key"].endswith("/report.json")]
    report = json.loads(s3.get_object(Bucket=settings.data_bucket, Key=report_key)["Body"].read())
    assert report["file_error"] == "no_valid_rows" and report["issue_counts"] == {"wrong_type": 2}
    assert versions(service) == []


@pytest.mark.parametrize(
    "key",
    [
        "landing/environment/air-quality/../../curated/x.csv",
        "landing/environment/%2e%2e/u" + "0" * 32 + "/a.csv",
        "landing/environment/air-quality/u" + "0" * 32 + "/a\x00.csv",
        "landing/" + "a" * 2000,
        "curated/air-quality/x.parquet",
    ],
)
def test_keys_that_are_not_requested_uploads_are_ignored(settings: Settings, service: IngestService, key: str) -> None:
    assert service.process(settings.data_bucket, key).outcome == "ignored"


def test_a_poison_message_goes_to_the_dead_letter_queue_alone(moto_aws: Aws, settings: Settings, service: IngestService) -> None:
    from functions.handlers import ingest as ingest_handler
    from infra.local.lambdas import LocalContext
    from infra.local.pump import sqs_event

    ingest_handler.ingest_service.cache_clear()
    good_key = land(moto_aws, settings)
    notification = {
        "Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": settings.data_bucket}, "object": {"key": good_key}}}
        ]
    }
    event = sqs_event(
        [
            {"MessageId": "poison", "ReceiptHandle": "r1", "Body": "this is not an S3 event"},
            {"MessageId": "good", "ReceiptHandle": "r2", "Body": json.dumps(notification)},
        ],
        "arn:aws:sqs:eu-west-1:123456789012:ingest",
    )
    response = ingest_handler.handler(event, LocalContext("ingest", 1024))
    assert response["batchItemFailures"] == []  # retrying cannot help the poison message: it goes to the DLQ at once
    assert versions(service) == [1]
    sqs = moto_aws.client("sqs")
    dead = sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName=settings.ingest_dead_letters)["QueueUrl"])
    assert [m["Body"] for m in dead["Messages"]] == ["this is not an S3 event"]
    ingest_handler.ingest_service.cache_clear()


def test_a_large_file_goes_up_in_presigned_parts(
    moto_aws: Aws, settings: Settings, service: IngestService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.catalog.service import CatalogService
    from functions.ingest import uploads as uploads_module
    from functions.ingest.models import CompletedPart, MultipartCompletion
    from functions.policy.access import AccessControl
    from functions.policy.engine import PolicyEngine
    from tests.unit.test_policies import caller

    monkeypatch.setattr(uploads_module, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(uploads_module, "PART_SIZE", 5 * 1024 * 1024)
    dynamodb = moto_aws.client("dynamodb")
    access = AccessControl(PolicyEngine(settings.policies_dir), AuditLog(settings.audit_table, dynamodb))
    catalog = CatalogService(CatalogRepository(settings.catalog_table, dynamodb), access)
    uploads = uploads_module.UploadService(
        catalog,
        IngestRepository(settings.catalog_table, dynamodb),
        settings.data_bucket,
        wiring.scopes(),
        wiring.department_keys(),
    )
    body = CSV + b"AQ-003,Centre,2026-11-04T08:00:00Z,1.5\n" * 300_000
    member = caller("environment")
    ticket = uploads.request_upload(member, "air-quality", UploadRequest(filename="big.csv", format="csv", size_bytes=len(body)))
    assert ticket.url is None and [p.size_bytes for p in ticket.parts][:1] == [5 * 1024 * 1024] and len(ticket.parts) == 3
    s3 = moto_aws.client("s3")
    etags = []
    for part in ticket.parts:
        start = (part.part_number - 1) * 5 * 1024 * 1024
        key = f"landing/environment/air-quality/{ticket.upload_id}/big.csv"
        upload = IngestRepository(settings.catalog_table, dynamodb).get_upload("air-quality", ticket.upload_id)
        assert upload is not None and upload.multipart_id is not None
        # moto serves presigned URLs in-process only through boto3: send the same part with the client
        response = s3.upload_part(
            Bucket=settings.data_bucket,
            Key=key,
            UploadId=upload.multipart_id,
            PartNumber=part.part_number,
            Body=body[start : start + part.size_bytes],
        )
        etags.append(CompletedPart(part_number=part.part_number, etag=response["ETag"]))
        assert "partNumber=" in part.url and "uploadId=" in part.url
    with pytest.raises(Exception, match="parts 1 to 3"):
        uploads.complete_multipart(member, "air-quality", ticket.upload_id, MultipartCompletion(parts=etags[:2]))
    uploads.complete_multipart(member, "air-quality", ticket.upload_id, MultipartCompletion(parts=etags))
    result = service.process(settings.data_bucket, f"landing/environment/air-quality/{ticket.upload_id}/big.csv")
    assert result.outcome == "published"
    assert service._uploads.get_version("air-quality", result.version or 0).rows == 300_002
