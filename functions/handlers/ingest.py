"""The ingest function: SQS messages carrying S3 ObjectCreated notifications for landing uploads.

Each message is processed on its own; a failure is reported for that message only (partial batch
response), so SQS retries it alone and, after the queue's maxReceiveCount, moves it intact to the DLQ.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.catalog.repository import CatalogRepository
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.handlers.wiring import audit_log
from functions.ingest.keys import KeyService
from functions.ingest.repository import IngestRepository
from functions.ingest.service import IngestService

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def ingest_service() -> IngestService:
    settings = get_settings()
    return IngestService(
        settings,
        IngestRepository(settings.catalog_table),
        CatalogRepository(settings.catalog_table),
        KeyService(settings.catalog_table, settings.platform_key),
        audit_log(),
    )


def handle_record(record: SQSRecord) -> None:
    notification: dict[str, Any] = json.loads(record.body)
    if notification.get("Event") == "s3:TestEvent":
        return  # S3 sends one when the notification is configured
    for entry in notification.get("Records", []):
        if not str(entry.get("eventName", "")).startswith("ObjectCreated"):
            continue
        bucket = entry["s3"]["bucket"]["name"]
        key = unquote_plus(entry["s3"]["object"]["key"])
        result = ingest_service().process(bucket, key)
        logger.info("ingested", extra={"key": key, "outcome": result.outcome, "version": result.version})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context))
