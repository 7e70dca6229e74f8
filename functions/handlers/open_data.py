"""The open-data function: `GET /catalog/dcat`, public (no signature), the public datasets as
DCAT-AP 3 for a city's open-data portal to harvest: JSON-LD, or Turtle on `Accept: text/turtle`.
Built at most once a minute per instance, answered with an ETag and `Cache-Control: public`."""

from __future__ import annotations

import hashlib
import threading
import time
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.catalog.dcat import CatalogEntry, statements, to_json_ld, to_turtle
from functions.catalog.models import Dataset
from functions.catalog.profiles import DatasetProfile
from functions.catalog.repository import CatalogQuery, CatalogRepository
from functions.core.errors import NotFound
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.handlers.http import as_proxy, problem, public_endpoint
from functions.handlers.wiring import directory
from functions.ingest.repository import IngestRepository

PATH = "/catalog/dcat"
BUILT_FOR_SECONDS = 60
CACHE_CONTROL = "public, max-age=300"
MAX_BASE_URLS = 8
TURTLE, JSON_LD = "text/turtle", "application/ld+json"
_lock = threading.Lock()
_built: dict[str, tuple[float, dict[str, str]]] = {}


@cache
def repositories() -> tuple[CatalogRepository, IngestRepository]:
    settings = get_settings()
    return CatalogRepository(settings.catalog_table), IngestRepository(settings.catalog_table)


def entries() -> list[CatalogEntry]:
    catalog, versions = repositories()
    names: dict[str, str] = {}
    found = []
    for dataset, _ in catalog.scan_pages(CatalogQuery(classification="public"), page_size=100, cursor=None):
        if dataset.classification != "public":
            continue  # the query filters already; the catalog never relies on one check for what goes out
        if dataset.owner not in names:
            department = directory().get_department(dataset.owner)
            names[dataset.owner] = department.name if department else dataset.owner
        found.append(CatalogEntry(dataset, names[dataset.owner], latest_profile(versions, dataset)))
    return found


def latest_profile(versions: IngestRepository, dataset: Dataset) -> DatasetProfile | None:
    """The latest version's profile (its coverage), or none: a dataset without a version, or whose
    version cannot be read now, is still listed, without coverage."""
    if not dataset.latest_version:
        return None
    try:
        return versions.get_version(dataset.dataset_id, dataset.latest_version).profile
    except NotFound:
        logger.warning("latest version not found", extra={"dataset": dataset.dataset_id})
        return None


def documents(base_url: str) -> dict[str, str]:
    """{"json-ld", "turtle", "etag"} for `base_url`, rebuilt when older than BUILT_FOR_SECONDS."""
    with _lock:
        kept = _built.get(base_url)
        if kept and time.monotonic() - kept[0] < BUILT_FOR_SECONDS:
            return kept[1]
        triples = statements(base_url, get_settings().city_name, entries())
        json_ld, turtle = to_json_ld(triples), to_turtle(triples)
        built = {"json-ld": json_ld, "turtle": turtle, "etag": '"' + hashlib.sha256(json_ld.encode()).hexdigest()[:32] + '"'}
        if len(_built) >= MAX_BASE_URLS:
            _built.clear()  # the embedded stack names itself by the Host header: any caller can make a new one
        _built[base_url] = (time.monotonic(), built)
        return built


def preferred(accept: str) -> str:
    """Turtle when the Accept header weighs it above JSON-LD (q-values honoured), JSON-LD otherwise."""
    weights = {TURTLE: 0.0, JSON_LD: 0.0}
    for part in accept.split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if media.lower() in weights:
            weights[media.lower()] = max(weights[media.lower()], quality)
    return TURTLE if weights[TURTLE] > weights[JSON_LD] else JSON_LD


def answer(status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **(headers or {})},
        "body": body,
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    method = str(event.get("httpMethod", "GET")).upper()
    if event.get("path") != PATH:
        return as_proxy(problem(404, "route_not_found", "No such route", str(event.get("path", ""))[:200]))
    if method not in ("GET", "HEAD"):
        return as_proxy(problem(405, "method_not_allowed", "Method not allowed", f"{PATH} answers GET"), {"Allow": "GET, HEAD"})
    try:
        built = documents(public_endpoint(event))
    except Exception:
        logger.exception("the open-data catalog could not be built")
        return as_proxy(problem(500, "internal_error", "Internal error", "The catalog could not be built; try again"))
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    cached = {"ETag": built["etag"], "Cache-Control": CACHE_CONTROL, "Vary": "Accept"}
    if headers.get("if-none-match") == built["etag"]:
        return answer(304, "", "application/ld+json", cached)
    if preferred(headers.get("accept", "")) == TURTLE:
        return answer(200, built["turtle"] if method == "GET" else "", "text/turtle; charset=utf-8", cached)
    return answer(200, built["json-ld"] if method == "GET" else "", "application/ld+json; charset=utf-8", cached)
