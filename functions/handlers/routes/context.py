"""What every route needs from the current request: the verified caller and the request id."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

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
