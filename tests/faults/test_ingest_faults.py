"""Ingest under every fault at every AWS call it makes: one version with its files, its audit entry
and its announcement, or one rejection with its report, and nothing else left behind."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.audit.chain import AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.settings import Settings
from functions.handlers import wiring
from functions.ingest.models import Upload, UploadRequest
from functions.ingest.orphans import OrphanSweeper
from functions.ingest.repository import SETTLE, IngestRepository
from functions.ingest.service import IngestService, UploadFailed
from functions.ingest.uploads import new_upload_id
from tests.datasets import city_schema
from tests.faults.conftest import RENEW_EVERY
from tests.faults.harness import Call, FaultInjector, plan
from tests.faults.scenario import NUMBERS, deliver, record
from tests.integration.conftest import Aws

GOOD = (
    b"station_id,district,measured_at,pm25\nAQ-001,Centre,2026-11-04T08:00:00Z,12.5\nAQ-002,Harbour,2026-11-04T08:00:00Z,80.1\n"
)
BAD = b"station_id,district,measured_at,pm25\nAQ-001,Centre,not-a-time,x\n"


class IngestRun:
    def __init__(self, moto_aws: Aws, settings: Settings) -> None:
        self.aws = moto_aws
        self.dynamodb = moto_aws.client("dynamodb")
        self.s3 = moto_aws.client("s3")
        self.renew(settings)

    def renew(self, settings: Settings) -> None:
        self.settings = settings
        self.uploads = IngestRepository(settings.catalog_table, self.dynamodb)
        self.audit = AuditLog(settings.audit_table, self.dynamodb)

    def service(self) -> IngestService:
        # A new instance per delivery: a stopped function's warm state dies with it.
        return IngestService(
            self.settings,
            IngestRepository(self.settings.catalog_table, self.dynamodb),
            CatalogRepository(self.settings.catalog_table, self.dynamodb),
            wiring.key_service(),
            AuditLog(self.settings.audit_table, self.dynamodb),
            wiring.scopes(),
            wiring.department_keys(),
            self.aws.client("events"),
        )

    def land(self, data: bytes) -> tuple[str, str]:
        self.number = next(NUMBERS)
        dataset_id = f"air-{self.number:04d}"
        CatalogRepository(self.settings.catalog_table, self.dynamodb).create(
            Dataset.model_validate(
                {
                    "dataset_id": dataset_id,
                    "title": "Air",
                    "classification": "internal",
                    "schema": city_schema("air-quality"),
                    "owner": "environment",
                    "created_at": "t",
                    "updated_at": "t",
                    "created_by": "sensors",
                }
            )
        )
        upload_id = new_upload_id()
        key = f"landing/environment/{dataset_id}/{upload_id}/data.csv"
        self.uploads.create_upload(
            Upload(
                upload_id=upload_id,
                dataset_id=dataset_id,
                owner="environment",
                created_by="sensors",
                created_at="t",
                request=UploadRequest(filename="data.csv", format="csv", size_bytes=len(data)),
                landing_key=key,
            )
        )
        self.s3.put_object(Bucket=self.settings.data_bucket, Key=key, Body=data)
        return dataset_id, key

    def deliver(self, key: str) -> Any:
        def run(attempt: int) -> str:
            try:
                self.service().process(self.settings.data_bucket, key, attempt=attempt, max_attempts=5)
            except UploadFailed as failed:
                if failed.retry:
                    raise
                return "dead-lettered"
            return "done"

        return run

    def sweep(self) -> None:
        """The schedules that follow any crash: settlements, then orphans (grace spent)."""
        self.service().sweep_settlements(older_than_seconds=0)
        OrphanSweeper(self.settings.data_bucket, self.uploads, wiring.scopes(), s3=self.s3, grace=_no_grace()).sweep()

    def objects(self, root: str, dataset_id: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.settings.data_bucket, Prefix=f"{root}/environment/{dataset_id}/")
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def audit_entries(self, upload_id: str) -> list[str]:
        entries, after = [], 0
        while True:
            page = self.audit.read("environment", after_seq=after, limit=500)
            entries.extend(page)
            if len(page) < 500:
                break
            after = page[-1].seq
        from cityshare.audit import verify_chain

        report = verify_chain("environment", [e.model_dump() for e in entries])
        assert not report.problems, report.problems
        return [e.action for e in entries if e.details.get("upload_id") == upload_id]

    def pending_settlements(self, dataset_id: str) -> list[str]:
        found = self.dynamodb.query(
            TableName=self.settings.catalog_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
            ExpressionAttributeValues={":pk": {"S": SETTLE}, ":d": {"S": f"{dataset_id}#"}},
        )
        return [item["sk"]["S"] for item in found["Items"]]


def _no_grace() -> Any:
    from datetime import timedelta

    return timedelta(seconds=-60)


def check_published(run: IngestRun, injector: FaultInjector, dataset_id: str, key: str, context: str) -> None:
    upload_id = key.split("/")[3]
    upload = run.uploads.get_upload(dataset_id, upload_id)
    assert upload is not None and upload.status == "published", f"{context}: upload is {upload and upload.status}"
    versions = run.uploads.list_versions(dataset_id)
    assert [v.version for v in versions] == [1], f"{context}: versions {[v.version for v in versions]}"
    version = versions[0]
    for file in version.files:
        body = run.s3.get_object(Bucket=run.settings.data_bucket, Key=file)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == version.content_sha256, f"{context}: {file} is not the published file"
    assert run.objects("curated", dataset_id) == sorted(version.files), f"{context}: curated {run.objects('curated', dataset_id)}"
    assert run.objects("landing", dataset_id) == [], f"{context}: the landing original is still there"
    assert run.audit_entries(upload_id) == ["PublishVersion"], f"{context}: audit {run.audit_entries(upload_id)}"
    announced = [e for e in injector.published if f'"dataset_id": "{dataset_id}"' in e["Detail"]]
    assert announced, f"{context}: the version was never announced"
    assert all('"version": 1' in e["Detail"] for e in announced), f"{context}: another version was announced"
    assert run.pending_settlements(dataset_id) == [], f"{context}: a settlement is still pending"


def check_rejected(run: IngestRun, dataset_id: str, key: str, context: str) -> None:
    upload_id = key.split("/")[3]
    upload = run.uploads.get_upload(dataset_id, upload_id)
    assert upload is not None and upload.status == "rejected", f"{context}: upload is {upload and upload.status}"
    assert run.uploads.list_versions(dataset_id) == []
    quarantined = run.objects("quarantine", dataset_id)
    assert [k.rsplit("/", 1)[1] for k in quarantined] == ["rejected-rows.jsonl", "report.json"], f"{context}: {quarantined}"
    assert upload.report is not None and upload.report.quarantine_key in quarantined, f"{context}: the report names another file"
    tags = run.s3.get_object_tagging(Bucket=run.settings.data_bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "cityshare-upload", "Value": "rejected"}], f"{context}: landing original tagged {tags}"
    assert run.audit_entries(upload_id) == ["RejectUpload"], f"{context}: audit {run.audit_entries(upload_id)}"
    assert run.pending_settlements(dataset_id) == [], f"{context}: a settlement is still pending"


def calls_of(run: IngestRun, injector: FaultInjector, data: bytes) -> list[Call]:
    """The AWS calls one clean delivery makes."""
    injector.reset()
    _, key = run.land(data)
    injector.reset()
    assert deliver(injector, run.deliver(key), None, None).outcomes == ["done"]
    return list(injector.calls)


@pytest.mark.parametrize("data", [GOOD, BAD], ids=["published", "rejected"])
def test_every_call_of_ingest_under_every_fault_converges(
    moto_aws: Aws, settings: Settings, injector: FaultInjector, data: bytes, renew_tables: Callable[[], Settings]
) -> None:
    run = IngestRun(moto_aws, settings)
    calls = calls_of(run, injector, data)
    assert len(calls) > 10
    for number, (index, fault) in enumerate(plan(calls), 1):
        if number % RENEW_EVERY == 0:
            run.renew(renew_tables())
        dataset_id, key = run.land(data)
        injector.reset()
        deliveries = deliver(injector, run.deliver(key), index, fault)
        record("ingest", injector, fault)
        context = f"{fault} at call {index} ({injector.injected}), deliveries {deliveries.outcomes}"
        assert deliveries.settled, context
        run.sweep()
        if data is GOOD:
            check_published(run, injector, dataset_id, key, context)
        else:
            check_rejected(run, dataset_id, key, context)


def test_a_duplicate_delivery_racing_a_publication_never_touches_its_files(moto_aws: Aws, settings: Settings) -> None:
    """Delivery B claims the upload while A is staging; A finishes, B goes on: one version, its file intact."""
    run = IngestRun(moto_aws, settings)
    dataset_id, key = run.land(GOOD)
    first, second = run.service(), run.service()
    # B takes the claim between A's claim and A's commit: A's commit is refused, B publishes.
    original = first._stage

    def stage_then_duplicate(upload: Upload, claim: str) -> Any:
        staged = original(upload, claim)
        assert second.process(settings.data_bucket, key).outcome == "published"
        return staged

    first._stage = stage_then_duplicate  # type: ignore[method-assign]
    assert first.process(settings.data_bucket, key).outcome == "duplicate"
    assert first.process(settings.data_bucket, key).outcome == "duplicate"
    run.sweep()
    check_published(run, _events_of(run, dataset_id), dataset_id, key, "race")


def _events_of(run: IngestRun, dataset_id: str) -> FaultInjector:
    """The events that reached the events queue, as the injector would have recorded them."""
    injector = FaultInjector()
    sqs = run.aws.client("sqs")
    while True:
        messages = sqs.receive_message(QueueUrl=run.aws.queue_urls["events"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return injector
        injector.published.extend({"Detail": json.dumps(json.loads(m["Body"])["detail"])} for m in messages)
