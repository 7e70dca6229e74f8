"""Writes the API's OpenAPI document and the events' JSON Schemas, generated from the pydantic models.

`make openapi` writes schemas/openapi.json (the signed API), schemas/open-interfaces.json (Delta
Sharing and DCAT-AP) and schemas/events/<DetailType>.json; a test fails when the committed copies drift.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer


def openapi_document() -> dict[str, object]:
    from functions.handlers import analytics, api
    from functions.handlers.http import build_resolver

    # One document for the whole API, whichever function serves each route. Copies of the routers:
    # including a router binds it to the including resolver's context, and the routes read the
    # caller from their own router, which must stay bound to its function's resolver (a process
    # that wrote this document would otherwise find no caller on its next request).
    app = build_resolver(*(copy.copy(router) for router in (*api.ROUTERS, *analytics.ROUTERS)))

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


def _error_responses(*statuses: int) -> dict[str, object]:
    """The protocol's errors: the function answers them as JSON, the gateway as problem+json whose
    `errorCode` and `message` members are the same."""
    meaning = {
        400: "A parameter, token or body the server refuses (INVALID_PARAMETER_VALUE)",
        401: "No bearer token, or one that is unknown, expired or revoked (UNAUTHENTICATED)",
        403: "Not allowed by the policies (PERMISSION_DENIED)",
        404: "No such share, schema, table or version for this recipient (RESOURCE_DOES_NOT_EXIST)",
        413: "Body over API Gateway's 10 MB (INVALID_PARAMETER_VALUE)",
        429: "Rate limit exceeded (RESOURCE_EXHAUSTED)",
        500: "Unexpected fault, logged (INTERNAL_ERROR); the protocol's clients retry it",
    }
    error = {"schema": {"$ref": "#/components/schemas/DeltaSharingError"}}
    return {
        str(status): {"description": meaning[status], "content": {"application/json": error, "application/problem+json": error}}
        for status in statuses
    }


def open_interfaces_document() -> dict[str, object]:
    """The routes recipients' tools and the city's open-data portal call: the Delta Sharing protocol
    (bearer tokens of share recipients) and the DCAT-AP catalog (public). Written here, not derived
    from a resolver: these routes answer the protocol's shapes, not the API's models."""
    from functions.sharing.delta import MAX_PAGE, QueryRequest

    def text(name: str, where: str, description: str) -> dict[str, object]:
        return {"name": name, "in": where, "required": where == "path", "description": description, "schema": {"type": "string"}}

    def number(name: str, description: str, minimum: int, maximum: int) -> dict[str, object]:
        bounds = {"type": "integer", "minimum": minimum, "maximum": maximum}
        return {"name": name, "in": "query", "required": False, "description": description, "schema": bounds}

    share = text("share", "path", "The owner department's share")
    schema = text("schema", "path", "A schema of the share (the datasets' first tag)")
    table = text("table", "path", "A dataset a live grant covers")
    paging = [
        number("maxResults", "Items per page", 0, MAX_PAGE),
        text("pageToken", "query", "The nextPageToken of the previous page"),
    ]
    ndjson = {"application/x-ndjson": {"schema": {"type": "string"}}}
    version_header = {"Delta-Table-Version": {"description": "The version answered", "schema": {"type": "integer"}}}
    errors = _error_responses(400, 401, 403, 404, 413, 429, 500)

    def listing(item: str) -> dict[str, object]:
        page = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
                "nextPageToken": {"type": "string"},
            },
        }
        return {"200": {"description": "A page", "content": {"application/json": {"schema": page}}}, **errors}

    def lines(description: str) -> dict[str, object]:
        return {"200": {"description": description, "headers": version_header, "content": ndjson}, **errors}

    base = "/delta-sharing/shares"
    tables = f"{base}/{{share}}/schemas/{{schema}}/tables/{{table}}"
    bearer: list[dict[str, list[str]]] = [{"recipientToken": []}]
    version: dict[str, Any] = {
        "parameters": [
            share,
            schema,
            table,
            text("startingTimestamp", "query", "ISO 8601 with a zone: the first version at or after it"),
        ],
        "responses": {"200": {"description": "The table's version, in the header only", "headers": version_header}, **errors},
        "security": bearer,
    }
    query_schema = QueryRequest.model_json_schema(by_alias=True)
    paths: dict[str, dict[str, Any]] = {
        base: {"get": {"summary": "The shares: one, the owner's", "parameters": paging, "responses": listing("Share")}},
        f"{base}/{{share}}": {
            "get": {
                "summary": "One share",
                "parameters": [share],
                "responses": {
                    "200": {
                        "description": "The share",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["share"],
                                    "properties": {"share": {"$ref": "#/components/schemas/Share"}},
                                }
                            }
                        },
                    },
                    **errors,
                },
            }
        },
        f"{base}/{{share}}/schemas": {
            "get": {"summary": "The share's schemas", "parameters": [share, *paging], "responses": listing("Schema")}
        },
        f"{base}/{{share}}/schemas/{{schema}}/tables": {
            "get": {"summary": "A schema's tables", "parameters": [share, schema, *paging], "responses": listing("Table")}
        },
        f"{base}/{{share}}/all-tables": {
            "get": {"summary": "Every table of the share", "parameters": [share, *paging], "responses": listing("Table")}
        },
        f"{tables}/version": {
            "get": dict(version, summary="The table's version"),
            "head": dict(version, summary="The table's version"),
        },
        f"{tables}/metadata": {
            "get": {
                "summary": "protocol and metaData lines",
                "parameters": [share, schema, table],
                "responses": lines("protocol, metaData"),
            }
        },
        f"{tables}/query": {
            "post": {
                "summary": "The files of the grant's view of a version (hints accepted, safely ignored)",
                "parameters": [share, schema, table],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryRequest"}}},
                },
                "responses": lines("protocol, metaData, then one file line per file"),
            }
        },
        f"{tables}/changes": {
            "get": {
                "summary": "The change data feed over a range of versions",
                "parameters": [
                    share,
                    schema,
                    table,
                    number("startingVersion", "First version", 0, 999_999_999),
                    number("endingVersion", "Last version (default: the latest)", 0, 999_999_999),
                    text("startingTimestamp", "query", "ISO 8601 with a zone, instead of startingVersion"),
                    text("endingTimestamp", "query", "ISO 8601 with a zone, instead of endingVersion"),
                ],
                "responses": lines("protocol, metaData, then remove and add lines per version"),
            }
        },
    }
    for operations in paths.values():
        for operation in operations.values():
            operation.setdefault("security", bearer)
            operation.setdefault("tags", ["delta-sharing"])
    paths["/catalog/dcat"] = {
        "get": {
            "summary": "The public datasets as DCAT-AP 3: JSON-LD, or Turtle when Accept prefers text/turtle",
            "tags": ["open-data"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The catalog (ETag, Cache-Control: public)",
                    "content": {
                        "application/ld+json": {"schema": {"type": "object"}},
                        "text/turtle": {"schema": {"type": "string"}},
                    },
                },
                "304": {"description": "Not modified (If-None-Match)"},
                **_problem_responses(404, 405, 429, 500),
            },
        }
    }
    strings = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CityShare open interfaces",
            "version": "0.1.0",
            "description": (
                "The Delta Sharing protocol (delta-io/delta-sharing PROTOCOL.md) over the owner's live grants to a recipient "
                "department, behind the bearer token of a share profile; and the public DCAT-AP catalog. "
                "CityShare's own API is in openapi.json."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "recipientToken": {"type": "http", "scheme": "bearer", "description": "The bearerToken of a share profile"}
            },
            "schemas": {
                "DeltaSharingError": {
                    "type": "object",
                    "required": ["errorCode", "message"],
                    "properties": {"errorCode": strings, "message": strings},
                },
                "Share": {"type": "object", "required": ["name"], "properties": {"name": strings, "id": strings}},
                "Schema": {"type": "object", "required": ["name", "share"], "properties": {"name": strings, "share": strings}},
                "Table": {
                    "type": "object",
                    "required": ["name", "schema", "share"],
                    "properties": {"name": strings, "schema": strings, "share": strings, "shareId": strings, "id": strings},
                },
                "QueryRequest": query_schema,
            },
        },
    }


def _problem_responses(*statuses: int) -> dict[str, object]:
    problem = {"application/problem+json": {"schema": {"type": "object", "required": ["type", "title", "status", "code"]}}}
    return {str(status): {"description": f"problem+json ({status})", "content": problem} for status in statuses}


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
    (target / "open-interfaces.json").write_text(_dump(open_interfaces_document()))
    (target / "events").mkdir(exist_ok=True)
    for name, schema in event_schemas().items():
        (target / "events" / f"{name}.json").write_text(_dump(schema))
