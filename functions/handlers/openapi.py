"""Writes the API's OpenAPI document and the events' JSON Schemas, generated from the pydantic models.

`make openapi` writes schemas/openapi.json and schemas/events/<DetailType>.json; a test fails when
the committed copies drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer


def openapi_document() -> dict[str, object]:
    from functions.handlers import analytics, api
    from functions.handlers.http import build_resolver

    # One document for the whole API, whichever function serves each route.
    app = build_resolver(*api.ROUTERS, *analytics.ROUTERS)

    document = app.get_openapi_json_schema(
        title="CityShare API",
        version="0.1.0",
        summary="Governed data sharing between a city's departments",
        description=(
            "Every request carries `Authorization: Bearer <JWT>`, signed (ES256 or RS256) with a key the platform "
            "admin registered for the calling principal, and bound to the request's method, target and body. "
            "Errors are application/problem+json with a stable `code`."
        ),
        security_schemes={"signedRequest": HTTPBearer(bearerFormat="JWT", description="CityShare signed request token")},
        security=[{"signedRequest": []}],
    )
    parsed: dict[str, Any] = json.loads(document)
    for operations in parsed["paths"].values():
        for operation in operations.values():
            if "204" in operation.get("responses", {}):
                operation["responses"]["204"].pop("content", None)  # No Content means no body at all
    return parsed


def event_schemas() -> dict[str, dict[str, object]]:
    """JSON Schema of each event's `detail`, by detail type."""
    from functions.core.events import EVENT_TYPES

    schemas: dict[str, dict[str, object]] = {}
    for event_type in EVENT_TYPES:
        schema = event_type.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://cityshare.city/schemas/events/{event_type.detail_type()}.json"
        schemas[event_type.detail_type()] = schema
    return schemas


def _dump(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")
    (target / "openapi.json").write_text(_dump(openapi_document()))
    (target / "events").mkdir(exist_ok=True)
    for name, schema in event_schemas().items():
        (target / "events" / f"{name}.json").write_text(_dump(schema))
