"""The triggers function: platform events (EventBridge → SQS) turned into what they should cause,
and, on a schedule, the outbox sweep (events of committed changes whose publication did not finish)
with the announcement sweep (alerts stored by a function that died before announcing them).

Each SQS record is one EventBridge event; a failure is reported for that record only (partial batch
response). Handlers are idempotent, since SQS and EventBridge both deliver at least once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.analytics.repository import AnalyticsRepository
from functions.analytics.triggers import TriggerService
from functions.analytics.webhooks import WebhookSender
from functions.catalog.repository import CatalogRepository
from functions.catalog.service import CatalogService
from functions.core import aws
from functions.core.events import EventPublisher, parse_event
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.handlers.wiring import access_control, athena, audit_log, department_keys, directory, scopes
from functions.ingest.repository import IngestRepository
from functions.notifications.repository import NotificationRepository
from functions.notifications.service import NotificationService
from functions.policy.actors import Actors
from functions.sharing.liveness import GrantLiveness
from functions.sharing.outbox import OutboxSweeper
from functions.sharing.placement import ViewJanitor
from functions.sharing.repository import SharingRepository

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def triggers() -> TriggerService:
    settings = get_settings()
    notifications = NotificationRepository(settings.notifications_table)
    webhooks = WebhookSender(allow_private=settings.allow_http_webhooks)
    return TriggerService(
        settings,
        CatalogRepository(settings.catalog_table),
        SharingRepository(settings.sharing_table),
        AnalyticsRepository(settings.analytics_table),
        IngestRepository(settings.catalog_table),
        lambda versions, alerts: NotificationService(
            notifications, settings.notifications_topic or None, versions, alerts, post_webhook=webhooks.send
        ),
        EventPublisher(settings.event_bus),
        audit_log(),
        CatalogService(
            CatalogRepository(settings.catalog_table), access_control(), grants=SharingRepository(settings.sharing_table)
        ),
        Actors(directory()),
        athena(),
        scopes(),
        department_keys(),
    )


@cache
def outbox() -> OutboxSweeper:
    settings = get_settings()
    return OutboxSweeper(SharingRepository(settings.sharing_table), EventPublisher(settings.event_bus))


def view_sweep() -> int:
    settings = get_settings()
    sharing = SharingRepository(settings.sharing_table)
    janitor = ViewJanitor(settings.data_bucket, scopes(), lister=aws.client("s3"))
    catalog = CatalogRepository(settings.catalog_table)
    liveness = GrantLiveness(CatalogService(catalog, access_control(), grants=sharing), Actors(directory()), sharing, catalog)
    return janitor.sweep(liveness.live, datetime.now(UTC))


def handle_record(record: SQSRecord) -> None:
    envelope: dict[str, Any] = json.loads(record.body)
    try:
        event = parse_event(str(envelope.get("detail-type")), envelope.get("detail") or {})
    except ValueError as error:
        # Not ours or malformed: retrying cannot help, so log it and let the record go.
        logger.warning("event ignored", extra={"reason": str(error)[:300], "event_id": envelope.get("id")})
        return
    triggers().handle(event)
    logger.info("event handled", extra={"type": event.detail_type(), "event_id": envelope.get("id")})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("cityshare-schedule") == "outbox":
        return {
            "published": outbox().sweep(),
            "announced": triggers().sweep_announcements(),
            "first_builds": len(triggers().sweep_first_builds()),
        }
    if event.get("cityshare-schedule") == "views":
        return {"deleted": view_sweep()}
    return dict(process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context))
