"""The ingest function: SQS messages carrying S3 ObjectCreated notifications for landing uploads, and
on schedules the settlement sweep (after-steps of ends whose function died) and the orphan sweep.

Each message is processed on its own; a failure is reported for that message only (partial batch
response), so SQS retries it alone and, after the queue's maxReceiveCount, moves it intact to the DLQ.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.catalog.repository import CatalogRepository
from functions.core import aws
from functions.core.layout import owner_of
from functions.core.observability import logger, record_metric
from functions.core.settings import get_settings
from functions.handlers.wiring import audit_log, department_keys, key_service, scopes
from functions.ingest.orphans import OrphanSweeper
from functions.ingest.repository import IngestRepository
from functions.ingest.service import IngestService, UploadFailed

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def ingest_service() -> IngestService:
    settings = get_settings()
    return IngestService(
        settings,
        IngestRepository(settings.catalog_table),
        CatalogRepository(settings.catalog_table),
        key_service(),
        audit_log(),
        scopes(),
        department_keys(),
    )


_deadline = 0.0  # when Lambda stops this invocation (time.monotonic())


def handle_record(record: SQSRecord) -> None:
    try:
        notification: dict[str, Any] = json.loads(record.body)
    except ValueError:
        logger.warning("not an S3 notification: sent to the dead-letter queue", extra={"message_id": record.message_id})
        dead_letter(record, "not an S3 notification")
        return
    if notification.get("Event") == "s3:TestEvent":
        return  # S3 sends one when the notification is configured
    settings = get_settings()
    for entry in notification.get("Records", []):
        if not str(entry.get("eventName", "")).startswith("ObjectCreated"):
            continue
        bucket = entry["s3"]["bucket"]["name"]
        key = unquote_plus(entry["s3"]["object"]["key"])
        try:
            result = ingest_service().process(
                bucket,
                key,
                attempt=int((record.raw_event.get("attributes") or {}).get("ApproximateReceiveCount", 1)),
                max_attempts=settings.ingest_max_attempts,
                seconds_left=_deadline - time.monotonic(),
            )
        except UploadFailed as failed:
            if not failed.retry:
                record_metric("UploadsFailed", owner_of(key))
            if failed.retry:
                raise  # may pass: SQS tries again, and moves the message to the DLQ after the last attempt
            # Trying again cannot help: the upload is `failed` now, and its message goes to the
            # dead-letter queue now, where the platform team's alarm and redrive pick it up.
            dead_letter(record, failed.report.issues[0].message if failed.report.issues else "processing failed")
            continue
        logger.info("ingested", extra={"key": key, "outcome": result.outcome, "version": result.version})
        if result.outcome in ("published", "rejected"):
            record_metric(f"Uploads{result.outcome.title()}", owner_of(key))
            record_metric("IngestLag", owner_of(key), _seconds_since(str(entry.get("eventTime", ""))), "Seconds")


def _seconds_since(event_time: str) -> float:
    """From the upload's arrival (the S3 event's time) to now: the ingest lag."""
    try:
        return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(event_time.replace("Z", "+00:00"))).total_seconds())
    except ValueError:
        return 0.0


def dead_letter(record: SQSRecord, reason: str) -> None:
    """Put the message, as received, in the ingest dead-letter queue, saying why."""
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().ingest_dead_letters)["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody=record.body,
        MessageAttributes={"cityshare-failure": {"DataType": "String", "StringValue": reason[:250]}},
    )


def orphan_sweep() -> int:
    settings = get_settings()
    return OrphanSweeper(settings.data_bucket, IngestRepository(settings.catalog_table), scopes()).sweep()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("cityshare-schedule") == "settle":
        return {"settled": ingest_service().sweep_settlements()}
    if event.get("cityshare-schedule") == "orphans":
        return {"deleted": orphan_sweep()}
    global _deadline
    _deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    return dict(process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context))
