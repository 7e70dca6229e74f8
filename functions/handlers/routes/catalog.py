"""Catalog routes: create, get, edit, list and search datasets."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.catalog.models import Classification, DatasetCreate, DatasetEntry, DatasetPage, DatasetUpdate
from functions.catalog.repository import CatalogQuery
from functions.handlers.routes.context import DatasetPath, caller, created, documented, request_id
from functions.handlers.services import catalog

router = APIGatewayRouter()


@router.post(
    "/datasets",
    summary="Create a dataset owned by the caller's department",
    tags=["catalog"],
    responses=documented(DatasetEntry, 403, 409, 413, status=201),
)
def create_dataset(request: DatasetCreate) -> Response[DatasetEntry]:
    dataset = catalog().create(caller(router), request, request_id(router))
    return created(dataset.entry(figures=True), location=f"/datasets/{dataset.dataset_id}")


@router.get(
    "/datasets",
    summary="List and search the datasets the caller may see",
    tags=["catalog"],
    responses=documented(DatasetPage, 400, 403),
)
def list_datasets(
    owner: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{1,31}$")] = None,
    classification: Annotated[Classification | None, Query()] = None,
    tag: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Text in title, description or tags")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> DatasetPage:
    query = CatalogQuery(owner=owner, classification=classification, tag=tag, text=q)
    return catalog().list(caller(router), query, limit, cursor, request_id(router))


@router.get(
    "/datasets/<dataset_id>",
    summary="Get a dataset's metadata and schema",
    tags=["catalog"],
    responses=documented(DatasetEntry, 404),
)
def get_dataset(dataset_id: DatasetPath) -> DatasetEntry:
    return catalog().get(caller(router), dataset_id, request_id(router))


@router.patch(
    "/datasets/<dataset_id>",
    summary="Edit a dataset's metadata (owner department only)",
    tags=["catalog"],
    responses=documented(DatasetEntry, 403, 404, 409, 413),
)
def update_dataset(dataset_id: DatasetPath, update: DatasetUpdate) -> DatasetEntry:
    return catalog().update(caller(router), dataset_id, update, request_id(router)).entry(figures=True)
