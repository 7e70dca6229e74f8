"""What every HTTP function shares: one Powertools REST resolver per function, built from routers,
the check of what the authorizer cannot see (the body's hash against the signed `bsh` claim, and
the body's size), the verified caller in the resolver's context, and every error as
application/problem+json with a stable code."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.audit.chain import AuditEvent
from functions.core import idempotency
from functions.core.errors import CityShareError, PayloadTooLarge, Unauthenticated
from functions.core.observability import logger, record_metric
from functions.core.scoped import serving
from functions.core.settings import get_settings
from functions.handlers.gate import Route, body_bytes, check_request
from functions.handlers.wiring import audit_log
from functions.identity.binding import body_digest
from functions.identity.context import caller_from_context
from functions.identity.models import PLATFORM_DEPARTMENT, Caller

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response[str]:
    body = {"type": f"https://cityshare.city/problems/{code}", "title": title, "status": status, "code": code, "detail": detail}
    body.update(extra)
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body))


def build_resolver(*routers: APIGatewayRouter) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(CityShareError)
    def _domain_error(error: CityShareError) -> Response[str]:
        return problem(error.status, error.code, error.title, error.detail, **error.extra)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response[str]:
        issues = [
            {
                "location": [str(part) for part in issue.get("loc", ())],
                "message": str(issue.get("msg", "")),
                "type": str(issue.get("type", "")),
            }
            for issue in error.errors()[:50]
        ]
        if any(issue["type"] == "json_invalid" for issue in issues):
            return problem(400, "malformed_json", "The body is not valid JSON", "Send a JSON object")
        # Values are not echoed back: they may be large or sensitive.
        return problem(422, "validation_failed", "The request does not match the API", f"{len(issues)} problem(s)", errors=issues)

    @app.not_found
    def _no_route(_: Exception) -> Response[str]:
        return problem(404, "route_not_found", "No such route", f"{app.current_event.http_method} {app.current_event.path}")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return problem(500, "internal_error", "Internal error", "The error was logged; nothing was changed partially")

    return app


def _check_body(body: bytes, caller: Caller) -> None:
    if len(body) > get_settings().max_body_bytes:
        raise PayloadTooLarge(f"The body exceeds {get_settings().max_body_bytes} bytes")
    if body_digest(body) != caller.body_sha256:
        raise Unauthenticated("body_mismatch")


def route_table(app: APIGatewayRestResolver) -> list[Route]:
    """(method, path rule) of every route the resolver serves (Powertools keeps them compiled)."""
    return [(route.method.upper(), route.rule) for route in [*app._static_routes, *app._dynamic_routes]]


def make_handler(app: APIGatewayRestResolver) -> Handler:
    routes = route_table(app)

    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return allow_console(event, answer(event, context))

    def answer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
        try:
            caller = caller_from_context(authorizer)
            body = body_bytes(event)
            _check_body(body, caller)
            check_request(event, body, routes, get_settings().max_body_bytes)
        except KeyError:
            # Only reachable if the function is invoked without the authorizer in front of it.
            return as_proxy(problem(401, "unauthenticated", Unauthenticated.title, "No verified caller"))
        except Unauthenticated as failure:
            audit_log().append(
                PLATFORM_DEPARTMENT,
                AuditEvent(
                    actor_department=caller.department_id,
                    actor_principal=caller.principal_id,
                    action="Authenticate",
                    resource=f"{event.get('httpMethod')} {str(event.get('path'))[:256]}",
                    decision="deny",
                    reason=failure.reason,
                    request_id=str((event.get("requestContext") or {}).get("requestId", "")),
                ),
            )
            return as_proxy(problem(401, failure.code, failure.title, failure.title))
        except CityShareError as error:
            headers = {"Allow": str(error.extra["allow"])} if "allow" in error.extra else {}
            return as_proxy(problem(error.status, error.code, error.title, error.detail), headers)
        app.append_context(caller=caller)
        # Data sessions while serving are vended for this verified request only (functions/core/scoped.py).
        with serving(caller.department_id, caller.jti):
            response = resolve_once(app, event, context, caller)
        record_metric("Requests", caller.department_id)
        if response.get("statusCode") == 403:
            record_metric("Refusals", caller.department_id)
        return response

    return handler


_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def resolve_once(app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext, caller: Caller) -> dict[str, Any]:
    """The route's answer; for a mutating call with an Idempotency-Key, the answer of the first call
    with that key (functions/core/idempotency.py)."""
    method = str(event.get("httpMethod") or "").upper()
    key = next((str(v) for k, v in (event.get("headers") or {}).items() if k.lower() == idempotency.HEADER.lower()), None)
    if method not in _MUTATING or key is None:
        return dict(app.resolve(event, context))
    if not idempotency.valid_key(key):
        detail = f"{idempotency.HEADER} is 1 to {idempotency.MAX_KEY_LENGTH} printable ASCII characters"
        return as_proxy(problem(400, "invalid_idempotency_key", "The idempotency key is not valid", detail))
    store = idempotency_store()
    key_id = idempotency.key_id(caller.department_id, caller.principal_id, method, str(event.get("path") or ""), key)
    lease = int(context.get_remaining_time_in_millis() / 1000) + 5  # a call in progress holds its key this long
    try:
        begun = store.begin(key_id, caller.body_sha256, lease)
    except Exception:
        logger.exception("the idempotency key could not be claimed")
        return as_proxy(problem(500, "internal_error", "Internal error", "The error was logged; nothing was changed"))
    if begun.outcome == "reused":
        detail = "This key was used with another body; use a new key for a new call"
        return as_proxy(problem(422, "idempotency_key_reused", "The idempotency key was used for another call", detail))
    if begun.outcome == "in_progress":
        detail = "A call with this key is still running; retry in a few seconds"
        return as_proxy(problem(409, "idempotency_in_progress", "A call with this key is in progress", detail))
    if begun.outcome == "replay" and begun.answer is not None:
        headers = {**begun.answer.headers, "Idempotent-Replayed": "true"}
        return {
            "statusCode": begun.answer.status,
            "headers": headers,
            "multiValueHeaders": {},
            "body": begun.answer.body,
            "isBase64Encoded": False,
        }
    token = idempotency.current.set(idempotency.IdempotentRequest(store, key_id, begun.claim))
    try:
        response = dict(app.resolve(event, context))
    finally:
        idempotency.current.reset(token)
    status = int(response.get("statusCode", 500))
    try:
        if status >= 500:
            store.release(key_id, begun.claim)
        else:
            headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
            store.finish(key_id, begun.claim, idempotency.Answer(status, headers, str(response.get("body") or "")))
    except Exception:
        logger.exception(
            "the answer of an idempotent call was not stored"
        )  # a retry re-runs; committed writes answer from the key
    return response


def idempotency_store() -> idempotency.IdempotencyStore:
    from functions.handlers.wiring import idempotency_store as built

    return built()


def allow_console(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Lets the stewards' console read the answer when it is served from its own origin (CloudFront in
    AWS; API Gateway answers its preflights): that one origin, named by the deployment, and no other."""
    console = get_settings().console_origin
    origin = next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "origin"), None)
    if console and origin == console:
        response["headers"] = {**(response.get("headers") or {}), "Access-Control-Allow-Origin": console, "Vary": "Origin"}
    return response


def as_proxy(response: Response[str], headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": PROBLEM_JSON, **(headers or {})},
        "multiValueHeaders": {},
        "body": response.body,
        "isBase64Encoded": False,
    }


def public_endpoint(event: dict[str, Any]) -> str:
    """This API's base URL as the caller reached it: API Gateway's domain and stage in AWS, the Host
    header on the embedded stack (127.0.0.1, plain HTTP)."""
    context = event.get("requestContext") or {}
    if context.get("domainName"):
        return f"https://{context['domainName']}/{context.get('stage', '')}".rstrip("/")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return f"http://{headers.get('host', '127.0.0.1')}"
