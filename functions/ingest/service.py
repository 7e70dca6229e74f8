"""Turning one landing object into one dataset version, exactly once.

Safe to run twice, or twice at once, for the same object: the upload record is claimed before
processing, the curated files are written under the upload's own prefix (a retry overwrites them),
and the version is committed in one transaction that also moves the upload to `published`. A crash
between writing Parquet and committing leaves files no catalog entry points to; the retry rewrites
them and commits. The DatasetVersionPublished event is sent after the commit and marked sent.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.audit.chain import AuditEvent, AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core import aws
from functions.core.clock import utc_now
from functions.core.errors import Conflict
from functions.core.events import DatasetVersionPublished, EventPublisher
from functions.core.observability import logger
from functions.core.sealing import seal_stream
from functions.core.settings import Settings, department_key
from functions.ingest.glue import GlueTables
from functions.ingest.keys import KeyService
from functions.ingest.models import DatasetVersion, IngestReport, Issue, Upload, vault_key
from functions.ingest.pipeline import arrow_schema_summary, run_pipeline
from functions.ingest.protect import Protector
from functions.ingest.repository import IngestRepository, VersionTaken

# The tag a rejected upload's original gets; the bucket's lifecycle deletes tagged objects after
# REJECTED_RETENTION_DAYS (infra/spec.py).
REJECTED_TAG = ("cityshare-upload", "rejected")
LANDING_KEY = re.compile(r"^landing/([a-z][a-z0-9-]{1,31})/([a-z0-9][a-z0-9-]{2,62})/(u[0-9a-f]{32})/([A-Za-z0-9._-]{1,255})$")
_MAX_VERSION_ATTEMPTS = 20


def _pseudonymises(dataset: Dataset) -> bool:
    return any(p.protection == "pseudonymise" for p in dataset.table_schema.personal_columns().values())


def _encryption(department: str | None) -> dict[str, str]:
    return {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": department} if department else {})}


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # published | rejected | duplicate | ignored
    version: int | None = None


class IngestService:
    s3 = aws.LazyClient("s3")
    events = aws.LazyClient("events")

    def __init__(
        self,
        settings: Settings,
        uploads: IngestRepository,
        catalog: CatalogRepository,
        keys: KeyService,
        audit: AuditLog,
        s3: Any = None,
        events: Any = None,
    ) -> None:
        self._settings = settings
        self._uploads = uploads
        self._catalog = catalog
        self._keys = keys
        self._audit = audit
        self._s3 = s3
        self._events = events

    def process(self, bucket: str, key: str) -> IngestResult:
        found = LANDING_KEY.match(key)
        if bucket != self._settings.data_bucket or not found:
            logger.warning("not a landing upload; ignored", extra={"bucket": bucket, "key": key[:300]})
            return IngestResult("ignored")
        owner, dataset_id, upload_id, _ = found.groups()
        upload = self._uploads.get_upload(dataset_id, upload_id)
        if upload is None or upload.landing_key != key or upload.owner != owner:
            logger.warning("no upload was requested for this object; ignored", extra={"key": key})
            return IngestResult("ignored")
        if upload.status == "published":
            self._announce(upload)  # a crash may have come between the commit and the event
            return IngestResult("duplicate", upload.version)
        if upload.status == "rejected" or not self._uploads.mark_processing(upload, utc_now()):
            return IngestResult("duplicate")
        return self._ingest(upload)

    def _ingest(self, upload: Upload) -> IngestResult:
        dataset = self._catalog.get(upload.dataset_id)
        if dataset is None:
            return self._reject(
                upload,
                IngestReport(
                    file_error="dataset_deleted", issues=[Issue(rule="dataset_deleted", message="The dataset no longer exists")]
                ),
            )
        head = self.s3.head_object(Bucket=self._settings.data_bucket, Key=upload.landing_key)
        if upload.source == "file" and head["ContentLength"] != upload.request.size_bytes:
            return self._reject(
                upload,
                IngestReport(
                    file_error="size_mismatch",
                    issues=[
                        Issue(
                            rule="size_mismatch",
                            message=f"declared {upload.request.size_bytes} bytes, received {head['ContentLength']}",
                        )
                    ],
                ),
            )
        department = department_key(self._settings, dataset.owner)
        body = self.s3.get_object(Bucket=self._settings.data_bucket, Key=upload.landing_key)["Body"]
        with tempfile.TemporaryDirectory(prefix="ingest-") as folder:
            vault_dir = Path(folder) / "vault"
            vault_dir.mkdir()

            def data_key() -> bytes:
                return self._keys.dataset_key(dataset.dataset_id, department)

            protector = Protector(
                dataset.table_schema,
                dataset.dataset_id,
                self._keys.pseudonymisation_key(dataset.owner, department) if _pseudonymises(dataset) else b"",
                data_key,
                vault_dir,
            )
            outcome = run_pipeline(body, upload.request, dataset.table_schema, dataset.ingest, protector, Path(folder))
            prefix = f"{dataset.dataset_id}/{upload.upload_id}"
            if outcome.quarantine is not None:
                outcome.report.quarantine_key = f"quarantine/{prefix}/rejected-rows.jsonl"
                self._store(outcome.quarantine, outcome.report.quarantine_key, department)
            if not outcome.accepted or outcome.parquet is None or outcome.profile is None:
                return self._reject(upload, outcome.report, department)
            curated_key = f"curated/{prefix}/part-00000.parquet"
            self._store(outcome.parquet, curated_key, department)
            for column, path in protector.vault_files().items():
                self._store_sealed(path, vault_key(dataset.dataset_id, upload.upload_id, column), data_key(), department)
            size = outcome.parquet.stat().st_size
        for _ in range(_MAX_VERSION_ATTEMPTS):
            latest = self._catalog.get(dataset.dataset_id)
            number = (latest.latest_version if latest else 0) + 1
            version = DatasetVersion(
                dataset_id=dataset.dataset_id,
                version=number,
                owner=dataset.owner,
                upload_id=upload.upload_id,
                created_at=utc_now(),
                rows=outcome.report.rows_accepted,
                files=[curated_key],
                bytes=size,
                content_sha256=outcome.parquet_sha256,
                profile=outcome.profile,
                report=outcome.report,
                output_schema=arrow_schema_summary(protector.output_schema),
                inputs=upload.inputs,
            )
            try:
                self._uploads.commit_version(version, utc_now())
            except VersionTaken:
                continue
            except Conflict:
                return IngestResult("duplicate")
            self._record(
                upload,
                "PublishVersion",
                "allow",
                {"version": number, "rows": version.rows, "rows_rejected": outcome.report.rows_rejected},
            )
            upload.version = number
            self._discard_landing(upload)
            self._announce(upload, version, dataset)
            return IngestResult("published", number)
        raise Conflict(f"Could not commit a version of {dataset.dataset_id}: too many concurrent uploads")

    def _store(self, path: Path, key: str, department: str | None) -> None:
        self.s3.upload_file(str(path), self._settings.data_bucket, key, ExtraArgs=_encryption(department))

    def _store_sealed(self, path: Path, key: str, data_key: bytes, department: str | None) -> None:
        """A vault file, sealed with the dataset's data key before it leaves the function."""
        sealed = path.with_suffix(".sealed")
        with path.open("rb") as source, sealed.open("wb") as target:
            for chunk in seal_stream(source, data_key, key.encode()):
                target.write(chunk)
        path.unlink()
        self._store(sealed, key, department)

    def _discard_landing(self, upload: Upload) -> None:
        """The original of a published upload is deleted: its protected form is the version. Should
        this fail, the landing lifecycle rule removes it later."""
        try:
            self.s3.delete_object(Bucket=self._settings.data_bucket, Key=upload.landing_key)
        except Exception:
            logger.warning("landing original left for the lifecycle rule", extra={"key": upload.landing_key})

    def _mark_rejected_landing(self, upload: Upload) -> None:
        """The original of a rejected upload is kept for REJECTED_RETENTION_DAYS (so its owner can
        look at what was sent), then the lifecycle rule on this tag deletes it."""
        try:
            self.s3.put_object_tagging(
                Bucket=self._settings.data_bucket,
                Key=upload.landing_key,
                Tagging={"TagSet": [{"Key": REJECTED_TAG[0], "Value": REJECTED_TAG[1]}]},
            )
        except Exception:
            logger.warning("rejected original left for the landing lifecycle rule", extra={"key": upload.landing_key})

    def _reject(self, upload: Upload, report: IngestReport, department: str | None = None) -> IngestResult:
        report_key = f"quarantine/{upload.dataset_id}/{upload.upload_id}/report.json"
        self.s3.put_object(
            Bucket=self._settings.data_bucket,
            Key=report_key,
            Body=report.model_dump_json(indent=2).encode(),
            ContentType="application/json",
            **_encryption(department),
        )
        self._uploads.reject_upload(upload, report, utc_now())
        self._mark_rejected_landing(upload)
        self._record(upload, "RejectUpload", "deny", {"reason": report.file_error, "rows_rejected": report.rows_rejected})
        return IngestResult("rejected")

    def _record(self, upload: Upload, action: str, decision: str, details: dict[str, object]) -> None:
        self._audit.append(
            upload.owner,
            AuditEvent(
                actor_department=upload.owner,
                actor_principal=upload.created_by,
                action=action,
                resource=f"Dataset::{upload.dataset_id}",
                decision=decision,
                reason=str(details.get("reason") or ""),
                details=dict(details, upload_id=upload.upload_id),
            ),
        )

    def _announce(self, upload: Upload, version: DatasetVersion | None = None, dataset: Dataset | None = None) -> None:
        if self._uploads.is_announced(upload.dataset_id, upload.upload_id) or upload.version is None:
            return
        version = version or self._uploads.get_version(upload.dataset_id, upload.version)
        dataset = dataset or self._catalog.get(upload.dataset_id)
        if dataset is None:
            return
        if self._settings.query_catalog:
            # Before the event: whoever reacts to it may query the version's table.
            GlueTables(self._settings.query_catalog, self._settings.data_bucket).register(version)
        EventPublisher(self._settings.event_bus, self.events).publish(
            DatasetVersionPublished(
                dataset_id=version.dataset_id,
                version=version.version,
                owner=version.owner,
                classification=dataset.classification,
                tags=list(dataset.tags),
                rows=version.rows,
                files=version.files,
                created_at=version.created_at,
                inputs=version.inputs,
            )
        )
        self._uploads.mark_announced(upload.dataset_id, upload.upload_id)
