"""Prints the API's OpenAPI document, generated from the routes' pydantic models.

`make openapi` writes it to schemas/openapi.json; a test fails when the committed copy drifts.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer


def openapi_document() -> dict[str, object]:
    from functions.handlers.api import app

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
    parsed: dict[str, object] = json.loads(document)
    return parsed


if __name__ == "__main__":
    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
