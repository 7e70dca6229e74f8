"""Uploads, dataset versions and the reports that explain a rejection. No pyarrow here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from functions.catalog.profiles import DatasetProfile
from functions.core.model import Model

FileFormat = Literal["csv", "jsonl", "parquet"]
Compression = Literal["none", "gzip"]
# Terminal: published, rejected (the data was refused, with its report), failed (processing failed
# for a reason that is the platform's, reported; the message is in the ingest dead-letter queue).
UploadStatus = Literal["awaiting_upload", "processing", "published", "rejected", "failed"]

MAX_UPLOAD_BYTES = 5 * 1024**3
MULTIPART_THRESHOLD = 100 * 1024**2
PART_SIZE = 64 * 1024**2
MAX_RECORDS_PER_PUSH = 1000


class CsvDialect(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    delimiter: Literal[",", ";", "\t", "|"] = ","
    quote_char: Literal['"', "'"] = '"'
    encoding: Literal["utf-8", "utf-8-sig", "latin-1", "windows-1252", "utf-16"] = "utf-8"


class UploadRequest(Model):
    """What a department declares before sending a file."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    filename: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+$")
    format: FileFormat
    compression: Compression = "none"
    size_bytes: int = Field(gt=0, le=MAX_UPLOAD_BYTES, description="Exact size of the file as sent (compressed)")
    csv: CsvDialect = Field(default_factory=CsvDialect)


class PresignedPart(Model):
    part_number: int
    url: str
    size_bytes: int


class UploadTicket(Model):
    """Where and how to send the file: one presigned PUT, or one per part for large files."""

    upload_id: str
    dataset_id: str
    method: Literal["PUT"] = "PUT"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    parts: list[PresignedPart] = Field(default_factory=list)
    expires_at: str


class CompletedPart(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    part_number: int = Field(ge=1, le=10000)
    etag: str = Field(min_length=1, max_length=128)


class MultipartCompletion(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    parts: list[CompletedPart] = Field(min_length=1, max_length=10000)


class RecordsPush(Model):
    """A small batch of JSON records (sensors, IoT gateways), ingested like an uploaded file."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_RECORDS_PER_PUSH)


class Issue(Model):
    """One problem found in the input: where (row, column), which rule, and an excerpt of the value."""

    row: int | None = None
    column: str | None = None
    rule: str
    message: str
    value: str | None = None


class IngestReport(Model):
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    file_error: str | None = None
    issue_counts: dict[str, int] = Field(default_factory=dict)
    issues: list[Issue] = Field(default_factory=list, description="The first problems found (at most 100)")
    quarantine_key: str | None = None


class Upload(Model):
    """An upload's record in the catalog: what was declared, and what became of it."""

    upload_id: str
    dataset_id: str
    owner: str
    created_by: str
    created_at: str
    source: Literal["file", "records", "derived"] = "file"
    request: UploadRequest
    inputs: list[str] = Field(default_factory=list, description="For derived datasets: the input versions, dataset@n")
    status: UploadStatus = "awaiting_upload"
    landing_key: str
    multipart_id: str | None = None
    version: int | None = None
    report: IngestReport | None = None
    updated_at: str | None = None
    claim: str | None = Field(default=None, description="The processing attempt that holds the upload (its files' folder)")


class DatasetVersion(Model):
    dataset_id: str
    version: int
    owner: str
    upload_id: str
    created_at: str
    rows: int
    files: list[str]
    bytes: int
    content_sha256: str
    profile: DatasetProfile
    report: IngestReport
    output_schema: dict[str, str] = Field(description="Column -> Arrow type of the curated Parquet")
    inputs: list[str] = Field(default_factory=list, description="Lineage: the versions it was computed from, dataset@n")


VersionAccess = Literal["owner", "whole", "grant", "metadata"]


class PublishedVersion(Model):
    """A version as the caller may see it. Discovering a dataset is not reading it: its figures
    follow read rights. `access` says what they cover: `owner` (everything, the report included),
    `whole` (the caller reads the whole dataset: public data or an unrestricted grant; no report),
    `grant` (figures of the caller's view only: its plain columns, and rows and profile only when the
    grant filters no rows), `metadata` (no figures at all)."""

    dataset_id: str
    version: int
    owner: str
    created_at: str
    output_schema: dict[str, str] = Field(description="Column -> Arrow type of the curated Parquet (the schema's, not values)")
    access: VersionAccess
    rows: int | None = None
    profile: DatasetProfile | None = None
    report: IngestReport | None = Field(default=None, description="The owner's only")
    files: list[str] | None = None
    bytes: int | None = None
    content_sha256: str | None = None
    upload_id: str | None = None
    inputs: list[str] | None = Field(default=None, description="Lineage: the versions it was computed from, dataset@n")


class VersionPage(Model):
    versions: list[PublishedVersion]
