"""What every route needs from the current request: the verified caller and the request id."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import Field

from functions.core.model import Model
from functions.identity.models import Caller

# Path parameters more than one group of routes takes.
DatasetPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$", description="Dataset id")]


def caller(app: Any) -> Caller:
    found: Caller = app.context["caller"]
    return found


def request_id(app: Any) -> str:
    return str(app.current_event.request_context.request_id or "")


def created(body: Any, location: str | None = None) -> Response[Any]:
    """201 with a JSON body (Powertools serialises only when the content type says JSON)."""
    headers = {"Location": location} if location else None
    return Response(status_code=201, content_type="application/json", body=body, headers=headers)


class Problem(Model):
    """RFC 9457 problem details, as every error of the API is answered."""

    type: str
    title: str
    status: int
    code: str = Field(description="Stable, machine-readable error code")
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems (validation_failed)")


# What any operation can answer: the request gate's refusals (functions/handlers/gate.py), a failed
# signature, the policies (a suspended department is refused everything), validation, throttling,
# and an unexpected fault.
EVERY_ROUTE = (400, 401, 403, 405, 413, 414, 415, 422, 429, 500)


def documented(model: Any, *statuses: int, status: int = 200) -> dict[int, Any]:
    """OpenAPI `responses` of a route: its success (`model`, None for no body) and the problem
    statuses it can answer (EVERY_ROUTE, and those given)."""
    described = {
        400: "Malformed request: body not UTF-8 or not JSON (malformed_json, invalid_encoding, too_deeply_nested, "
        "control_characters), "
        "or a request the domain refuses (invalid_request)",
        401: "The signed request did not verify (unauthenticated)",
        403: "Not allowed by the policies (forbidden)",
        404: "No such resource, or not visible to the caller (dataset_not_found, department_not_found, not_found)",
        405: "The path does not take this method (method_not_allowed; see Allow)",
        409: "Conflicts with the current state (conflict, already_exists)",
        413: "Body too large (payload_too_large)",
        414: "Path and query too long (uri_too_long)",
        415: "The body is not declared as JSON (unsupported_media_type)",
        422: "Does not match the API's models (validation_failed, with per-field errors)",
        429: "Rate limit exceeded (too_many_requests)",
        500: "Unexpected fault, logged; nothing was changed partially (internal_error)",
    }
    responses: dict[int, Any] = {
        problem: {"description": described[problem], "content": {"application/problem+json": {"model": Problem}}}
        for problem in sorted({*EVERY_ROUTE, *statuses})
    }
    success: dict[str, Any] = {"description": {200: "OK", 201: "Created", 202: "Accepted", 204: "Done"}[status]}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    responses[status] = success
    return responses


def public_endpoint(app: Any) -> str:
    """The API's base URL for the current request (functions.handlers.http.public_endpoint)."""
    from functions.handlers.http import public_endpoint as of_event

    return of_event(app.current_event.raw_event)
