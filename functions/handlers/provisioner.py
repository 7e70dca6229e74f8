"""The provisioner function: makes a newly registered department's resources (its KMS key, its API
key) from each DepartmentRegistered event, and on a schedule for any department still lacking them.
The only function allowed to create keys (functions/identity/provisioning.py)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.events import DepartmentRegistered, parse_event
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.handlers.wiring import directory
from functions.identity.provisioning import Provisioner

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def provisioner() -> Provisioner:
    settings = get_settings()
    return Provisioner(directory(), settings.stage, settings.usage_plan, settings.query_role)


def handle_record(record: SQSRecord) -> None:
    envelope: dict[str, Any] = json.loads(record.body)
    try:
        event = parse_event(str(envelope.get("detail-type")), envelope.get("detail") or {})
    except ValueError as error:
        logger.warning("event ignored", extra={"reason": str(error)[:300]})
        return
    if isinstance(event, DepartmentRegistered):
        provisioner().provision(event.department_id)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("cityshare-schedule") == "departments":
        return {"provisioned": provisioner().sweep()}
    return dict(process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context))
