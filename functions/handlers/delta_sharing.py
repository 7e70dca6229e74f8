"""The Delta Sharing function: the protocol's REST endpoints under /delta-sharing, behind the
recipient authorizer (bearer tokens; functions/handlers/recipient_authorizer.py). Errors are the
protocol's `{"errorCode", "message"}` with a 4xx status (its clients retry 5xx); list answers are
JSON, metadata and query answers newline-delimited JSON with the `Delta-Table-Version` header."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.catalog.repository import CatalogRepository
from functions.core.errors import CityShareError, InvalidRequest, Unauthenticated, delta_sharing_error_code
from functions.core.observability import logger, record_metric
from functions.core.scoped import serving
from functions.core.settings import get_settings
from functions.handlers.gate import body_bytes, check_json_body
from functions.handlers.recipient_authorizer import audit_refusal, bearer_token
from functions.handlers.services import catalog, sharing
from functions.handlers.wiring import directory
from functions.ingest.repository import IngestRepository
from functions.sharing.delta import DeltaSharingService, QueryRequest, RecipientLookup, page
from functions.sharing.recipients import RecipientRepository, ShareReader, token_digest
from functions.sharing.repository import SharingRepository

PREFIX = "/delta-sharing"
TABLE = PREFIX + "/shares/<share>/schemas/<schema>/tables/<table>"
MAX_QUERY_BODY_BYTES = 64 * 1024

app = APIGatewayRestResolver()


@cache
def delta_sharing() -> DeltaSharingService:
    settings = get_settings()
    return DeltaSharingService(
        CatalogRepository(settings.catalog_table),
        SharingRepository(settings.sharing_table),
        IngestRepository(settings.catalog_table),
        sharing(),
        catalog(),
        RecipientLookup(
            RecipientRepository(settings.sharing_table),
            directory(),
            CatalogRepository(settings.catalog_table),
            SharingRepository(settings.sharing_table),
        ),
    )


def error_body(status: int, message: str) -> str:
    """The protocol's error: `{"errorCode", "message"}`, its code from the status."""
    return json.dumps({"errorCode": delta_sharing_error_code(status), "message": message})


def error(status: int, message: str) -> Response[str]:
    return Response(status, "application/json", error_body(status, message))


@app.exception_handler(CityShareError)
def _domain_error(failure: CityShareError) -> Response[str]:
    # The protocol's clients retry 5xx: anything the caller can fix is a 4xx.
    return error(failure.status if failure.status < 500 else 500, failure.detail or failure.title)


@app.exception_handler(ValidationError)
def _invalid(failure: ValidationError) -> Response[str]:
    return error(400, f"The request is not valid: {len(failure.errors())} problem(s)")


@app.not_found
def _no_route(_: Exception) -> Response[str]:
    return error(404, "No such Delta Sharing endpoint")


def reader() -> ShareReader:
    """The recipient the (cached) authorizer verified, with the token this request presents: the
    service confirms both against the table before reading anything."""
    context = app.current_event.raw_event["requestContext"]["authorizer"]
    return ShareReader(
        recipient_id=str(context["recipient_id"]),
        owner=str(context["owner"]),
        department=str(context["department_id"]),
        token_sha256=token_digest(bearer_token(dict(app.current_event.headers))),
    )


@app.exception_handler(Unauthenticated)
def _refused(failure: Unauthenticated) -> Response[str]:
    """A token revoked or expired, or a department removed, since the authorizer's answer was cached."""
    event = app.current_event
    token = bearer_token(dict(event.headers))
    audit_refusal(failure, token, event.http_method, event.path, event.request_context.request_id or "")
    return error(401, "The bearer token is not valid")


def parameter(name: str) -> str | None:
    """A query parameter, given at most once (which of two would the caller mean?); None when absent."""
    values = (app.current_event.multi_value_query_string_parameters or {}).get(name) or []
    if len(values) > 1:
        raise InvalidRequest(f"{name} is given more than once")
    return values[0] if values else None


def whole_number(name: str, digits: int = 9) -> int | None:
    value = parameter(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > digits:
        raise InvalidRequest(f"{name} must be a whole number of at most {digits} digits")
    return int(value)


def listing(items: list[dict[str, Any]]) -> Response[str]:
    return json_answer(page(items, whole_number("maxResults"), parameter("pageToken") or None))


def json_answer(body: dict[str, Any], version: int | None = None) -> Response[str]:
    headers = {"Delta-Table-Version": str(version)} if version is not None else None
    return Response(200, "application/json; charset=utf-8", json.dumps(body), headers=headers)


def lines_answer(version: int, lines: list[dict[str, Any]]) -> Response[str]:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return Response(200, "application/x-ndjson; charset=utf-8", body, headers={"Delta-Table-Version": str(version)})


@app.get(PREFIX + "/shares")
def list_shares() -> Response[str]:
    return listing(delta_sharing().shares(reader()))


@app.get(PREFIX + "/shares/<share>")
def get_share(share: str) -> Response[str]:
    return json_answer({"share": delta_sharing().share(reader(), share)})


@app.get(PREFIX + "/shares/<share>/schemas")
def list_schemas(share: str) -> Response[str]:
    return listing(delta_sharing().schemas(reader(), share))


@app.get(PREFIX + "/shares/<share>/schemas/<schema>/tables")
def list_tables(share: str, schema: str) -> Response[str]:
    return listing([t.listing() for t in delta_sharing().tables(reader(), share, schema)])


@app.get(PREFIX + "/shares/<share>/all-tables")
def list_all_tables(share: str) -> Response[str]:
    return listing([t.listing() for t in delta_sharing().tables(reader(), share)])


@app.route(TABLE + "/version", method=["GET", "HEAD"])
def table_version(share: str, schema: str, table: str) -> Response[str]:
    version = delta_sharing().table_version(reader(), share, schema, table, parameter("startingTimestamp"))
    return Response(200, "application/json; charset=utf-8", "", headers={"Delta-Table-Version": str(version)})


@app.get(TABLE + "/metadata")
def table_metadata(share: str, schema: str, table: str) -> Response[str]:
    return lines_answer(*delta_sharing().metadata(reader(), share, schema, table))


@app.post(TABLE + "/query")
def query_table(share: str, schema: str, table: str) -> Response[str]:
    body = body_bytes(app.current_event.raw_event)
    if len(body) > MAX_QUERY_BODY_BYTES:
        return error(400, f"The query body is over {MAX_QUERY_BODY_BYTES} bytes")
    parsed = check_json_body(body, "application/json") if body.strip() else {}
    if not isinstance(parsed, dict):
        return error(400, "The query body must be a JSON object")
    version, lines = delta_sharing().query(reader(), share, schema, table, QueryRequest.model_validate(parsed))
    record_metric("DeltaSharingQueries", reader().department)
    return lines_answer(version, lines)


@app.get(TABLE + "/changes")
def table_changes(share: str, schema: str, table: str) -> Response[str]:
    version, lines = delta_sharing().changes(
        reader(),
        share,
        schema,
        table,
        whole_number("startingVersion"),
        whole_number("endingVersion"),
        parameter("startingTimestamp"),
        parameter("endingTimestamp"),
    )
    return lines_answer(version, lines)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if "recipient_id" not in authorizer:
        # Only reachable if the function is invoked without the recipient authorizer in front of it.
        return _raw(401, "No verified recipient")
    token = bearer_token({str(k): str(v) for k, v in (event.get("headers") or {}).items()})
    try:
        # Data sessions while serving are vended for this recipient's token only (functions/core/scoped.py).
        with serving(str(authorizer.get("department_id", "")), token, "recipient"):
            return dict(app.resolve(event, context))
    except Exception:
        logger.exception("delta sharing request failed")
        return _raw(500, "Internal error")


def _raw(status: int, message: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    return {"statusCode": status, "headers": headers, "body": error_body(status, message), "isBase64Encoded": False}
