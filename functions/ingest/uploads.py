"""The API side of ingestion: presigned uploads, pushed records, upload status and versions.

No pyarrow here: the API function only hands out URLs and reads the catalog.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from functions.catalog.models import Dataset
from functions.catalog.service import CatalogService
from functions.core.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from functions.core.layout import landing_key
from functions.core.scoped import DepartmentScopes, sse_kms
from functions.identity.directory import DepartmentKeys
from functions.identity.models import Caller
from functions.ingest.models import (
    MULTIPART_THRESHOLD,
    PART_SIZE,
    DatasetProfile,
    DatasetVersion,
    IngestReport,
    Issue,
    MultipartCompletion,
    PresignedPart,
    PublishedVersion,
    RecordsPush,
    Upload,
    UploadRequest,
    UploadTicket,
    VersionAccess,
    VersionPage,
)
from functions.ingest.repository import IngestRepository
from functions.sharing.models import GrantTerms, choose_grant

URL_LIFETIME_SECONDS = 900
MAX_RECORDS_BYTES = 1024 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


def published_version(version: DatasetVersion, access: VersionAccess, terms: GrantTerms | None = None) -> PublishedVersion:
    """What of `version` a caller with `access` sees (PublishedVersion says what each level covers)."""
    shown = PublishedVersion(
        dataset_id=version.dataset_id,
        version=version.version,
        owner=version.owner,
        created_at=version.created_at,
        output_schema=version.output_schema,
        access=access,
    )
    if access in ("owner", "whole"):
        shown = shown.model_copy(
            update={
                "rows": version.rows,
                "profile": version.profile,
                "files": version.files,
                "bytes": version.bytes,
                "content_sha256": version.content_sha256,
                "upload_id": version.upload_id,
                "inputs": version.inputs,
                "report": version.report if access == "owner" else None,
            }
        )
    elif access == "grant" and terms is not None and terms.row_filter is None and terms.aggregate is None:
        # Figures of the view: its rows are all rows; only columns it shows as stored (not masked,
        # coarsened, re-keyed or decrypted, whose stored figures would say more than the view). A
        # view of groups shows none: the rows' extremes and distribution would single out what the
        # groups of at least k rows hide.
        altered = {*terms.masked_columns, *terms.generalised, *terms.linked_columns, *terms.decrypt_columns}
        plain = [c for c in (terms.columns or version.profile.columns) if c in version.profile.columns and c not in altered]
        profile = DatasetProfile(rows=version.profile.rows, columns={c: version.profile.columns[c] for c in plain})
        shown = shown.model_copy(update={"rows": version.rows, "profile": profile})
    return shown


def new_upload_id() -> str:
    return "u" + secrets.token_hex(16)


class UploadService:
    """Landing objects are written through URLs signed by a session acting for the dataset's owner,
    encrypted with the owner's KMS key (the encryption headers are signed too)."""

    def __init__(
        self,
        catalog: CatalogService,
        uploads: IngestRepository,
        bucket: str,
        scopes: DepartmentScopes,
        department_keys: DepartmentKeys,
        clock: Callable[[], datetime] = _now,
        stalled_after_seconds: int = 2520,
    ) -> None:
        self._catalog = catalog
        self._uploads = uploads
        self._bucket = bucket
        self._scopes = scopes
        self._department_keys = department_keys
        self._clock = clock
        self._stalled_after = stalled_after_seconds

    def request_upload(self, caller: Caller, dataset_id: str, request: UploadRequest, request_id: str = "") -> UploadTicket:
        dataset = self._catalog.authorized(caller, "UploadData", dataset_id, request_id, {"size_bytes": request.size_bytes})
        upload = self._new_upload(caller, dataset, request, "file")
        s3, encryption = self._scopes.s3(dataset.owner), sse_kms(self._department_keys.key_of(dataset.owner))
        expires = self._clock() + timedelta(seconds=URL_LIFETIME_SECONDS)
        ticket = UploadTicket(upload_id=upload.upload_id, dataset_id=dataset_id, expires_at=expires.isoformat(timespec="seconds"))
        if request.size_bytes <= MULTIPART_THRESHOLD:
            # Content-Length and the encryption are signed headers: S3 refuses a body of any other size,
            # or sent without them.
            ticket.url = s3.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": upload.landing_key,
                    "ContentLength": request.size_bytes,
                    "ContentType": "application/octet-stream",
                    **encryption,
                },
                ExpiresIn=URL_LIFETIME_SECONDS,
            )
            ticket.headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(request.size_bytes),
                "x-amz-server-side-encryption": encryption["ServerSideEncryption"],
                "x-amz-server-side-encryption-aws-kms-key-id": encryption["SSEKMSKeyId"],
            }
        else:
            multipart = s3.create_multipart_upload(
                Bucket=self._bucket, Key=upload.landing_key, ContentType="application/octet-stream", **encryption
            )
            upload.multipart_id = multipart["UploadId"]
            count = math.ceil(request.size_bytes / PART_SIZE)
            for number in range(1, count + 1):
                size = min(PART_SIZE, request.size_bytes - (number - 1) * PART_SIZE)
                url = s3.generate_presigned_url(
                    "upload_part",
                    Params={
                        "Bucket": self._bucket,
                        "Key": upload.landing_key,
                        "UploadId": upload.multipart_id,
                        "PartNumber": number,
                        "ContentLength": size,
                    },
                    ExpiresIn=URL_LIFETIME_SECONDS,
                )
                ticket.parts.append(PresignedPart(part_number=number, url=url, size_bytes=size))
        self._uploads.create_upload(upload)
        return ticket

    def complete_multipart(
        self, caller: Caller, dataset_id: str, upload_id: str, completion: MultipartCompletion, request_id: str = ""
    ) -> Upload:
        self._catalog.authorized(caller, "UploadData", dataset_id, request_id, {"complete": upload_id})
        upload = self._existing(dataset_id, upload_id)
        if upload.multipart_id is None or upload.status != "awaiting_upload":
            raise Conflict(f"Upload {upload_id} is not a multipart upload waiting for its parts")
        expected = math.ceil(upload.request.size_bytes / PART_SIZE)
        if sorted(p.part_number for p in completion.parts) != list(range(1, expected + 1)):
            raise InvalidRequest(f"Upload {upload_id} has parts 1 to {expected}; send each once")
        self._scopes.s3(upload.owner).complete_multipart_upload(
            Bucket=self._bucket,
            Key=upload.landing_key,
            UploadId=upload.multipart_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.part_number, "ETag": p.etag} for p in sorted(completion.parts, key=lambda p: p.part_number)
                ]
            },
        )
        return upload

    def push_records(self, caller: Caller, dataset_id: str, push: RecordsPush, request_id: str = "") -> Upload:
        body = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in push.records).encode()
        if len(body) > MAX_RECORDS_BYTES:
            raise PayloadTooLarge(f"Pushed records may total {MAX_RECORDS_BYTES} bytes; upload a file instead")
        dataset = self._catalog.authorized(caller, "UploadData", dataset_id, request_id, {"records": len(push.records)})
        request = UploadRequest(filename="records.jsonl", format="jsonl", size_bytes=len(body))
        upload = self._new_upload(caller, dataset, request, "records")
        self._uploads.create_upload(upload)
        self._scopes.s3(dataset.owner).put_object(
            Bucket=self._bucket,
            Key=upload.landing_key,
            Body=body,
            ContentType="application/x-ndjson",
            **sse_kms(self._department_keys.key_of(dataset.owner)),
        )
        return upload

    def get_upload(self, caller: Caller, dataset_id: str, upload_id: str, request_id: str = "") -> Upload:
        self._catalog.authorized(caller, "UploadData", dataset_id, request_id, {"status_of": upload_id})
        upload = self._existing(dataset_id, upload_id)
        if upload.status == "processing" and upload.updated_at and self._stalled(upload.updated_at):
            return self._end_stalled(upload, upload.updated_at)
        return upload

    def _stalled(self, claimed_at: str) -> bool:
        claimed = datetime.fromisoformat(claimed_at.replace("Z", "+00:00"))
        return self._clock() - claimed > timedelta(seconds=self._stalled_after)

    def _end_stalled(self, upload: Upload, claimed_at: str) -> Upload:
        """An upload whose every attempt ended without a word (the function was killed: out of
        memory, say) is `failed`, so nobody waits for it forever; its message is in the DLQ."""
        report = IngestReport(
            file_error="processing_failed",
            issues=[
                Issue(
                    rule="stalled",
                    message="Processing stopped without finishing on every attempt (the function was stopped); "
                    "nothing was published; the platform team is alerted (ingest dead-letter queue)",
                )
            ],
        )
        self._uploads.end_upload(upload, "failed", report, self._clock().isoformat(), only_if=("processing", claimed_at))
        return self._existing(upload.dataset_id, upload.upload_id)

    def list_versions(self, caller: Caller, dataset_id: str, request_id: str = "") -> VersionPage:
        dataset = self._catalog.authorized(caller, "ViewDataset", dataset_id, request_id, {"versions": "list"})
        shape = self._shaper(caller, dataset)
        return VersionPage(versions=[shape(version) for version in self._uploads.list_versions(dataset_id)])

    def get_version(self, caller: Caller, dataset_id: str, version: int, request_id: str = "") -> PublishedVersion:
        dataset = self._catalog.authorized(caller, "ViewDataset", dataset_id, request_id, {"version": version})
        return self._shaper(caller, dataset)(self._uploads.get_version(dataset_id, version))

    def _shaper(self, caller: Caller, dataset: Dataset) -> Callable[[DatasetVersion], PublishedVersion]:
        if dataset.owner == caller.department_id:
            return lambda version: published_version(version, "owner")
        readable, grants = self._catalog.readable_under(caller, dataset)
        grant = None if dataset.open_to(caller.department_id) else choose_grant(grants, None)
        if not readable:
            return lambda version: published_version(version, "metadata")
        if grant is None or not grant.terms.restricted():
            return lambda version: published_version(version, "whole")
        return lambda version: published_version(version, "grant", grant.terms)

    def _new_upload(self, caller: Caller, dataset: Dataset, request: UploadRequest, source: Literal["file", "records"]) -> Upload:
        upload_id = new_upload_id()
        return Upload(
            upload_id=upload_id,
            dataset_id=dataset.dataset_id,
            owner=dataset.owner,
            created_by=caller.principal_id,
            created_at=self._clock().isoformat(timespec="seconds"),
            source=source,
            request=request,
            landing_key=landing_key(dataset.owner, dataset.dataset_id, upload_id, request.filename),
        )

    def _existing(self, dataset_id: str, upload_id: str) -> Upload:
        upload = self._uploads.get_upload(dataset_id, upload_id)
        if upload is None:
            raise NotFound(f"Dataset {dataset_id} has no upload {upload_id}")
        return upload
