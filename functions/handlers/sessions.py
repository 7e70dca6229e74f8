"""The sessions function: vends department data sessions to the api, analytics and delta-sharing
functions, only for requests the authorizer verified or a live recipient's token
(functions/sharing/sessions.py). The only request-path role that may assume the data role."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.observability import logger
from functions.handlers.wiring import session_broker
from functions.sharing.sessions import vend_event


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = vend_event(session_broker(), event)
    # Who asked and what for: the credentials themselves are never logged.
    logger.info(
        "data session",
        extra={
            "department": event.get("department"),
            "kind": event.get("kind"),
            "acting_for": event.get("acting_for"),
            "dataset": event.get("dataset"),
            "refused": answer.get("refused"),
        },
    )
    return answer
