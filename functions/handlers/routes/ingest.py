"""Ingestion routes: presigned uploads, pushed records, upload status, versions."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.handlers.routes.context import DatasetPath, caller, created, documented, request_id
from functions.handlers.services import uploads, versions
from functions.ingest.models import (
    MultipartCompletion,
    PublishedVersion,
    RecordsPush,
    Upload,
    UploadRequest,
    UploadTicket,
    VersionPage,
)

router = APIGatewayRouter()

UploadPath = Annotated[str, Path(pattern=r"^u[0-9a-f]{32}$", description="Upload id")]
VersionPathParam = Annotated[int, Path(ge=1, le=10**9, description="Version number")]


@router.post(
    "/datasets/<dataset_id>/uploads",
    summary="Ask for a presigned upload of a file (CSV, JSON lines, Parquet; gzip allowed)",
    tags=["ingest"],
    responses=documented(UploadTicket, 403, 404, status=201),
)
def request_upload(dataset_id: DatasetPath, request: UploadRequest) -> Response[UploadTicket]:
    return created(uploads().request_upload(caller(router), dataset_id, request, request_id(router)))


@router.get(
    "/datasets/<dataset_id>/uploads/<upload_id>",
    summary="An upload's status, and its report when rejected or partly accepted",
    tags=["ingest"],
    responses=documented(Upload, 403, 404),
)
def get_upload(dataset_id: DatasetPath, upload_id: UploadPath) -> Upload:
    return uploads().get_upload(caller(router), dataset_id, upload_id, request_id(router))


@router.post(
    "/datasets/<dataset_id>/uploads/<upload_id>/complete",
    summary="Complete a multipart upload with the parts' ETags",
    tags=["ingest"],
    responses=documented(Upload, 400, 403, 404, 409),
)
def complete_upload(dataset_id: DatasetPath, upload_id: UploadPath, completion: MultipartCompletion) -> Upload:
    return uploads().complete_multipart(caller(router), dataset_id, upload_id, completion, request_id(router))


@router.post(
    "/datasets/<dataset_id>/records",
    summary="Push a small batch of JSON records (at most 1,000 rows and 1 MB); ingested like a file",
    tags=["ingest"],
    responses=documented(Upload, 403, 404, 413, status=202),
)
def push_records(dataset_id: DatasetPath, push: RecordsPush) -> Response[Upload]:
    upload = uploads().push_records(caller(router), dataset_id, push, request_id(router))
    return Response(status_code=202, content_type="application/json", body=upload)


@router.get(
    "/datasets/<dataset_id>/versions",
    summary="A dataset's versions, newest first; figures (rows, profile, report) as far as the caller may read",
    tags=["ingest"],
    responses=documented(VersionPage, 404),
)
def list_versions(dataset_id: DatasetPath) -> VersionPage:
    return versions().list_versions(caller(router), dataset_id, request_id(router))


@router.get(
    "/datasets/<dataset_id>/versions/<version>",
    summary="One version; its figures (rows, files, profile; the report for the owner) as far as the caller may read",
    tags=["ingest"],
    responses=documented(PublishedVersion, 404),
)
def get_version(dataset_id: DatasetPath, version: VersionPathParam) -> PublishedVersion:
    return versions().get_version(caller(router), dataset_id, version, request_id(router))
