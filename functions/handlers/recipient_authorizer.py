"""API Gateway REQUEST authorizer of the Delta Sharing routes: a recipient's bearer token (issued by
an owner's steward, stored only as a hash) stands for one recipient department reading one owner's
share. Its answer (the recipient, the department's throttling key) is cached by API Gateway for
RECIPIENT_AUTHORIZER_CACHE_SECONDS per token; a revoked token or a suspended department still
stops at once, because the Delta Sharing function confirms both on every request in the same
read as its data (functions/sharing/delta.RecipientLookup). Refusals are audited like any failed
sign-in. These tokens reach the /delta-sharing routes only: CityShare's own API needs signed requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.audit.chain import AuditEvent
from functions.core.clock import utc_now
from functions.core.errors import Unauthenticated
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.handlers.wiring import audit_log, directory
from functions.identity.models import PLATFORM_DEPARTMENT
from functions.sharing.recipients import RECIPIENT_ID, RecipientRepository, ShareRecipient, authenticate

BEARER = "bearer "


@cache
def recipients() -> RecipientRepository:
    return RecipientRepository(get_settings().sharing_table)


def recipient_context(recipient: ShareRecipient, department_status: str) -> dict[str, str]:
    return {
        "department_id": recipient.department,
        "principal_id": f"recipient-{recipient.recipient_id}",
        "roles": "member",
        "department_status": department_status,
        "recipient_id": recipient.recipient_id,
        "owner": recipient.owner,
        "expires_at": recipient.expires_at,
    }


def _claimed(token: str) -> str:
    claimed = token.partition(".")[0]
    return f"recipient-{claimed}" if RECIPIENT_ID.match(claimed) else "unrecognised"


def delta_sharing_routes(method_arn: str) -> str:
    """Every Delta Sharing route of the stage the request came to: API Gateway caches this answer per
    token and applies it to the token's next requests, whichever route they call."""
    api_and_stage = "/".join(method_arn.split("/")[:2])
    return f"{api_and_stage}/*/delta-sharing/*"


def bearer_token(headers: dict[str, str]) -> str:
    header = headers.get("authorization") or headers.get("Authorization") or ""
    return header[len(BEARER) :].strip() if header.lower().startswith(BEARER) else ""


def audit_refusal(failure: Unauthenticated, token: str, method: str, path: str, request_id: str) -> None:
    """A refused recipient, in the platform's chain like any failed sign-in (by the authorizer, or
    by the Delta Sharing function when a token died within the authorizer's cached answer)."""
    logger.info("delta sharing request refused", extra={"reason": failure.reason})
    audit_log().append(
        PLATFORM_DEPARTMENT,
        AuditEvent(
            actor_department="unknown",
            # Only a well-formed recipient id is recorded: whatever else was sent may be someone's secret.
            actor_principal=_claimed(token),
            action="AuthenticateRecipient",
            resource=f"{method} {path[:256]}",
            decision="deny",
            reason=failure.reason,
            request_id=request_id,
        ),
    )


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    token = bearer_token(dict(request.headers))
    try:
        if not token:
            raise Unauthenticated("missing_token")
        recipient = authenticate(recipients(), token, utc_now())
        department = directory().get_department(recipient.department)
        if department is None:
            raise Unauthenticated("unknown_department")
    except Unauthenticated as failure:
        audit_refusal(failure, token, request.http_method, request.path, request.request_context.request_id or "")
        raise Exception("Unauthorized") from None
    response: dict[str, Any] = {
        "principalId": f"{recipient.department}/recipient-{recipient.recipient_id}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": delta_sharing_routes(request.method_arn)}
            ],
        },
        "context": recipient_context(recipient, department.status),
    }
    if department.usage_key:
        response["usageIdentifierKey"] = department.usage_key  # throttled as the recipient department
    return response
