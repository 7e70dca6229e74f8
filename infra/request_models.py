"""Request bodies checked at the edge: every route whose body is JSON (from the API's OpenAPI
document, schemas/openapi.json, which `make openapi` generates from the pydantic models) takes a body
model that API Gateway's request validator applies, and the embedded gateway applies the same.

The model asks one thing: that the body be a JSON object. A body that is not JSON at all, or an
array, a text or a number, is refused (`400 invalid_request`) before any function runs. Everything
else (members, types, values, bounds, the 1 MB limit) is the function's to answer, because it answers
precisely: `422 validation_failed` names each member and what is wrong with it, `413` the size. API
Gateway cannot: a gateway response is a plain substitution template, and its validator's words
(`$context.error.validationErrorString`) carry quotes that would break the JSON, so every refusal at
the edge gets one fixed sentence. A typo deserves the precise answer, so the edge refuses only
what that one sentence describes exactly.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

OPENAPI = Path(__file__).resolve().parents[1] / "schemas" / "openapi.json"
MODEL_NAME = "JsonObject"
BODY_MODEL: dict[str, Any] = {"$schema": "http://json-schema.org/draft-04/schema#", "title": MODEL_NAME, "type": "object"}
BODY_REFUSED = "The request body must be a JSON object"


@cache
def json_body_routes() -> frozenset[tuple[str, str]]:
    """(method, path) of every route whose body is JSON."""
    document = json.loads(OPENAPI.read_text())
    return frozenset(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    )


def body_refused(method: str, path: str, content_type: str | None, body: bytes) -> bool:
    """Whether API Gateway's validator would refuse `body` on this route (the embedded gateway asks).
    As API Gateway does, the model applies to a body declared `application/json` (or not declared,
    which API Gateway takes for it); any other type goes to the function, which answers 415."""
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if (method, path) not in json_body_routes() or media_type != "application/json":
        return False
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested deeper than a parser goes
        return True
    return not isinstance(document, dict)
