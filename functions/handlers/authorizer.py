"""API Gateway REQUEST authorizer: verifies the signed request token of every API call.

No result caching (each token is single-use). The body hash travels to the API function in the
authorizer context, because an authorizer never sees the body.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.audit.chain import AuditEvent
from functions.core.errors import Unauthenticated
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.handlers.wiring import audit_log, directory
from functions.identity.binding import canonical_target
from functions.identity.context import authorizer_context
from functions.identity.models import PLATFORM_DEPARTMENT, Caller
from functions.identity.nonces import NonceStore
from functions.identity.tokens import TokenVerifier, claimed_identity

BEARER = "bearer "


@cache
def verifier() -> TokenVerifier:
    settings = get_settings()
    return TokenVerifier(settings, directory(), NonceStore(settings.nonces_table))


def authenticate(event: APIGatewayAuthorizerRequestEvent) -> Caller:
    """Verify the request's token; audit and re-raise any failure."""
    header = event.headers.get("authorization") or event.headers.get("Authorization") or ""
    token = header[len(BEARER) :].strip() if header.lower().startswith(BEARER) else ""
    target = canonical_target(event.path, event.raw_event.get("multiValueQueryStringParameters"))
    try:
        if not token:
            raise Unauthenticated("missing_token")
        return verifier().verify(token, event.http_method, target)
    except Unauthenticated as failure:
        department, principal = claimed_identity(token)
        logger.info("request refused", extra={"reason": failure.reason, "claimed": f"{department}/{principal}"})
        audit_log().append(
            PLATFORM_DEPARTMENT,
            AuditEvent(
                actor_department=department,
                actor_principal=principal,
                action="Authenticate",
                resource=f"{event.http_method} {target[:256]}",
                decision="deny",
                reason=failure.reason,
                request_id=event.request_context.request_id or "",
            ),
        )
        raise


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    try:
        caller = authenticate(request)
    except Unauthenticated:
        # API Gateway answers 401 (gateway response UNAUTHORIZED) when an authorizer raises this.
        raise Exception("Unauthorized") from None
    response = {
        "principalId": f"{caller.department_id}/{caller.principal_id}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": request.method_arn}],
        },
        "context": authorizer_context(caller),
    }
    if caller.usage_key:
        # The department's usage plan key (API key source AUTHORIZER): API Gateway throttles per department.
        response["usageIdentifierKey"] = caller.usage_key
    return response
