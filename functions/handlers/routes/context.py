"""What every route needs from the current request: the verified caller and the request id."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, Field

from functions.identity.models import Caller


def caller(app: Any) -> Caller:
    found: Caller = app.context["caller"]
    return found


def request_id(app: Any) -> str:
    return str(app.current_event.request_context.request_id or "")


def created(body: Any, location: str | None = None) -> Response[Any]:
    """201 with a JSON body (Powertools serialises only when the content type says JSON)."""
    headers = {"Location": location} if location else None
    return Response(status_code=201, content_type="application/json", body=body, headers=headers)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of the API is answered."""

    type: str
    title: str
    status: int
    code: str = Field(description="Stable, machine-readable error code")
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems (validation_failed)")


def documented(model: Any, *statuses: int, status: int = 200) -> dict[int, Any]:
    """OpenAPI `responses` of a route: its success (`model`, None for no body) and the problem
    statuses it can answer (401, 422 and 429 on every route)."""
    described = {
        400: "Malformed request or cursor",
        401: "The signed request did not verify",
        403: "Not allowed by the policies",
        404: "No such resource (or not visible to the caller)",
        409: "Conflicts with the current state",
        413: "Body too large",
        422: "Does not match the API's models",
        429: "Rate limit exceeded",
    }
    responses: dict[int, Any] = {
        problem: {"description": described[problem], "content": {"application/problem+json": {"model": Problem}}}
        for problem in sorted({401, 422, 429, *statuses})
    }
    success: dict[str, Any] = {"description": {200: "OK", 201: "Created", 202: "Accepted", 204: "Done"}[status]}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    responses[status] = success
    return responses
