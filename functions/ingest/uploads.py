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
    IngestReport,
    Issue,
    MultipartCompletion,
    PresignedPart,
    RecordsPush,
    Upload,
    UploadRequest,
    UploadTicket,
)
from functions.ingest.repository import IngestRepository

URL_LIFETIME_SECONDS = 900
MAX_RECORDS_BYTES = 1024 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


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
