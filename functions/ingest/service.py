"""Turning one landing object into one dataset version, exactly once, as a chain of recorded steps.

    claimed (attempt a) -> staged (files under a's own folder) -> ended (published | rejected |
    failed, with a settlement marker, in one transaction conditional on a's claim) -> settled
    (audit entry exactly once, landing original deleted or tagged, version announced; marker deleted)

Any delivery may die after any AWS call, or arrive twice, or at once with another:
- a new delivery takes the claim over, so the older attempt can no longer end the upload, and it
  deletes only the files of its own attempt folder: a published version's files are never touched
  (nor overwritten) by another delivery;
- an end is one conditional transaction, so there is one version (or one rejection) per upload;
- what follows an end is idempotent and driven by the upload's recorded state: a redelivery, or the
  settlement sweep (run on a schedule), finishes it; the audit entry is appended `once`.
Attempt folders that died before their end are removed by the orphan sweep.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.audit.chain import AuditEvent, AuditLog
from functions.catalog.models import Dataset
from functions.catalog.profiles import DatasetProfile
from functions.catalog.repository import CatalogRepository
from functions.core import aws
from functions.core.clock import utc_now
from functions.core.errors import Conflict
from functions.core.events import DatasetVersionPublished, EventPublisher
from functions.core.layout import ATTEMPT_ROOTS, attempt_prefix, curated_key, quarantine_key, upload_prefix, vault_key
from functions.core.observability import logger
from functions.core.scoped import DepartmentScopes, sse_kms
from functions.core.settings import Settings
from functions.core.transient import is_transient
from functions.identity.directory import DepartmentKeys
from functions.ingest.glue import GlueTables
from functions.ingest.models import DatasetVersion, IngestReport, Issue, Upload
from functions.ingest.pipeline import StepFailed, arrow_schema_summary, run_pipeline, step
from functions.ingest.repository import IngestRepository, VersionTaken
from functions.privacy.keys import KeyService
from functions.privacy.protect import Protector
from functions.privacy.sealing import seal_stream

# The tags a rejected or failed upload's original gets; the bucket's lifecycle deletes tagged
# objects after REJECTED_RETENTION_DAYS and FAILED_RETENTION_DAYS (infra/spec.py).
REJECTED_TAG = ("cityshare-upload", "rejected")
FAILED_TAG = ("cityshare-upload", "failed")
# The watchdog records a timeout this long before Lambda would stop the function.
WATCHDOG_MARGIN_SECONDS = 20.0
# An end whose after-steps are still pending this long was left by a function that died.
SETTLE_AFTER_SECONDS = 60


class UploadFailed(Exception):
    """Processing failed; the upload holds the report. `retry`: the cause may pass, let SQS retry."""

    def __init__(self, report: IngestReport, retry: bool) -> None:
        super().__init__(report.issues[0].message if report.issues else "processing failed")
        self.report = report
        self.retry = retry


@dataclass(frozen=True)
class Attempts:
    attempt: int
    maximum: int
    claim: str = ""


@dataclass(frozen=True)
class Staged:
    """A processed upload, stored and ready to commit."""

    dataset: Dataset
    report: IngestReport
    profile: DatasetProfile
    curated_key: str
    size: int
    sha256: str
    output_schema: dict[str, str]


LANDING_KEY = re.compile(r"^landing/([a-z][a-z0-9-]{1,31})/([a-z0-9][a-z0-9-]{2,62})/(u[0-9a-f]{32})/([A-Za-z0-9._-]{1,255})$")
_MAX_VERSION_ATTEMPTS = 20


def _pseudonymises(dataset: Dataset) -> bool:
    return any(p.protection == "pseudonymise" for p in dataset.table_schema.personal_columns().values())


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # published | rejected | duplicate | ignored
    version: int | None = None


def new_claim() -> str:
    """A processing attempt's id: the folder its files go to, the claim it holds on the upload."""
    return "a" + secrets.token_hex(8)


class IngestService:
    """Every object of an upload is read and written by a session acting for the upload's owner
    (functions.core.scoped): this function's own role reaches no department's data."""

    events = aws.LazyClient("events")

    def __init__(
        self,
        settings: Settings,
        uploads: IngestRepository,
        catalog: CatalogRepository,
        keys: KeyService,
        audit: AuditLog,
        scopes: DepartmentScopes,
        department_keys: DepartmentKeys,
        events: Any = None,
    ) -> None:
        self._settings = settings
        self._uploads = uploads
        self._catalog = catalog
        self._keys = keys
        self._audit = audit
        self._scopes = scopes
        self._department_keys = department_keys
        self._events = events

    def process(
        self, bucket: str, key: str, attempt: int = 1, max_attempts: int = 1, seconds_left: float | None = None
    ) -> IngestResult:
        """Ingest one landing object. Raises UploadFailed when processing failed for a reason that is
        not the file's (the upload is then `failed` with a report, or retried when the cause may pass)."""
        found = LANDING_KEY.match(key)
        if bucket != self._settings.data_bucket or not found:
            logger.warning("not a landing upload; ignored", extra={"bucket": bucket, "key": key[:300]})
            return IngestResult("ignored")
        owner, dataset_id, upload_id, _ = found.groups()
        upload = self._uploads.get_upload(dataset_id, upload_id)
        if upload is None or upload.landing_key != key or upload.owner != owner:
            logger.warning("no upload was requested for this object; ignored", extra={"key": key})
            return IngestResult("ignored")
        if upload.status in ("published", "rejected"):
            self.settle(upload)  # a delivery may have died after the end, before its after-steps
            return IngestResult("duplicate", upload.version)
        claim = new_claim()
        if not self._uploads.mark_processing(upload, utc_now(), claim):
            return IngestResult("duplicate")
        upload.claim = claim
        self._discard_attempts(upload, keep=claim)  # whatever an earlier attempt left can never be published now
        final = attempt >= max_attempts
        attempts = Attempts(attempt, max_attempts, claim)
        # Lambda stops a function at its timeout without warning: say so on the upload just before.
        watchdog = (
            threading.Timer(max(seconds_left - WATCHDOG_MARGIN_SECONDS, 1.0), self._timed_out, (upload, attempts))
            if seconds_left is not None
            else None
        )
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            staged = self._stage(upload, claim)
            result = staged if isinstance(staged, IngestResult) else self._commit(upload, staged)
        except Exception as error:
            outcome = self._lost_or_failed(upload, error, attempts, final)
            if isinstance(outcome, IngestResult):
                return outcome
            raise outcome from error
        finally:
            if watchdog is not None:
                watchdog.cancel()
        return result

    def _stage(self, upload: Upload, claim: str) -> IngestResult | Staged:
        """Everything before the commit: read, validate, protect, profile, write, store. Returns the
        result when the file is rejected, else what the commit needs."""
        dataset = self._catalog.get(upload.dataset_id)
        if dataset is None:
            return self._reject(
                upload,
                IngestReport(
                    file_error="dataset_deleted", issues=[Issue(rule="dataset_deleted", message="The dataset no longer exists")]
                ),
                claim,
            )
        s3 = self._scopes.s3(upload.owner)
        with step("read"):
            head = s3.head_object(Bucket=self._settings.data_bucket, Key=upload.landing_key)
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
                claim,
            )
        with step("read"):
            body = s3.get_object(Bucket=self._settings.data_bucket, Key=upload.landing_key)["Body"]
        with tempfile.TemporaryDirectory(prefix="ingest-") as folder:
            vault_dir = Path(folder) / "vault"
            vault_dir.mkdir()

            def data_key() -> bytes:
                return self._keys.dataset_key(dataset.dataset_id, dataset.owner)

            with step("protect"):
                token_key = self._keys.pseudonymisation_key(dataset.owner) if _pseudonymises(dataset) else b""
            protector = Protector(dataset.table_schema, dataset.dataset_id, token_key, data_key, vault_dir)
            outcome = run_pipeline(body, upload.request, dataset.table_schema, dataset.ingest, protector, Path(folder))
            owner, dataset_id, upload_id = dataset.owner, dataset.dataset_id, upload.upload_id
            with step("store"):
                if outcome.quarantine is not None:
                    outcome.report.quarantine_key = quarantine_key(owner, dataset_id, upload_id, claim, "rejected-rows.jsonl")
                    self._store(outcome.quarantine, outcome.report.quarantine_key, owner)
                if not outcome.accepted or outcome.parquet is None or outcome.profile is None:
                    return self._reject(upload, outcome.report, claim)
                curated = curated_key(owner, dataset_id, upload_id, claim)
                self._store(outcome.parquet, curated, owner)
                for column, path in protector.vault_files().items():
                    self._store_sealed(path, vault_key(curated, column), data_key(), owner)
            return Staged(
                dataset,
                outcome.report,
                outcome.profile,
                curated,
                outcome.parquet.stat().st_size,
                outcome.parquet_sha256,
                arrow_schema_summary(protector.output_schema),
            )

    def _commit(self, upload: Upload, staged: Staged) -> IngestResult:
        dataset = staged.dataset
        for _ in range(_MAX_VERSION_ATTEMPTS):
            latest = self._catalog.get(dataset.dataset_id)
            number = (latest.latest_version if latest else 0) + 1
            version = DatasetVersion(
                dataset_id=dataset.dataset_id,
                version=number,
                owner=dataset.owner,
                upload_id=upload.upload_id,
                created_at=utc_now(),
                rows=staged.report.rows_accepted,
                files=[staged.curated_key],
                bytes=staged.size,
                content_sha256=staged.sha256,
                profile=staged.profile,
                report=staged.report,
                output_schema=staged.output_schema,
                inputs=upload.inputs,
            )
            try:
                self._uploads.commit_version(version, utc_now(), upload.claim or "")
            except VersionTaken:
                continue
            upload.status, upload.version = "published", number
            self.settle(upload, version, dataset)
            return IngestResult("published", number)
        raise Conflict(f"Could not commit a version of {dataset.dataset_id}: too many concurrent uploads")

    def _lost_or_failed(self, upload: Upload, error: Exception, attempts: Attempts, final: bool) -> IngestResult | UploadFailed:
        """After an error: if the upload ended anyway (a commit applied whose answer was lost) or
        another attempt took it over, that is the outcome and this attempt's own files go (never
        those of the end); else the failure is recorded."""
        current = self._uploads.get_upload(upload.dataset_id, upload.upload_id)
        if current is not None and current.claim == attempts.claim and current.status in ("published", "rejected"):
            self.settle(current)
            return IngestResult("published" if current.status == "published" else "rejected", current.version)
        if current is None or current.claim != attempts.claim or current.status in ("published", "rejected"):
            self._discard_attempts(upload, only=attempts.claim)
            logger.info("another attempt holds the upload; this one stands down", extra={"upload": upload.upload_id})
            return IngestResult("duplicate", current.version if current else None)
        return self._failed(upload, error, attempts, final)

    def _failed(self, upload: Upload, error: Exception, attempts: Attempts, final: bool) -> UploadFailed:
        """Record why processing failed. A cause that may pass (throttling, a dropped connection) is
        retried by SQS until the last attempt; any other ends the upload `failed` at once."""
        failed_step, cause = (error.step, error.cause) if isinstance(error, StepFailed) else ("ingest", error)
        transient = is_transient(cause)
        terminal = final or not transient
        dataset = self._catalog.get(upload.dataset_id)
        withhold = dataset is None or bool(dataset.table_schema.personal_columns())
        where = traceback.extract_tb(cause.__traceback__)[-1] if cause.__traceback__ else None
        logger.error(
            "ingest failed",
            extra={
                "upload": upload.upload_id,
                "step": failed_step,
                "error_type": type(cause).__name__,
                "at": f"{where.filename}:{where.lineno}" if where else "",
                # An error's text may quote a value: kept out of the log when the schema is personal.
                "error": "" if withhold else str(cause)[:500],
                "attempt": attempts.attempt,
                "terminal": terminal,
            },
        )
        detail = "" if withhold else f": {str(cause).splitlines()[0][:200]}" if str(cause) else ""
        then = (
            "the platform team is alerted (ingest dead-letter queue) and can run it again after a fix"
            if terminal
            else f"it will be tried again (attempt {attempts.attempt} of {attempts.maximum})"
        )
        report = IngestReport(
            file_error="processing_failed",
            issues=[
                Issue(
                    rule="processing_failed",
                    message=f"The {failed_step} step failed ({type(cause).__name__}{detail}); nothing was published; {then}",
                )
            ],
        )
        self._discard_attempts(upload, only=attempts.claim)
        status = "failed" if terminal else "processing"
        if self._uploads.end_upload(upload, status, report, utc_now(), claim=attempts.claim) and terminal:
            upload.status, upload.report = "failed", report
            self.settle(upload)
        return UploadFailed(report, retry=transient)

    def _timed_out(self, upload: Upload, attempts: Attempts) -> None:
        final = attempts.attempt >= attempts.maximum
        then = "nothing was published" + (
            "" if final else f"; it will be tried again (attempt {attempts.attempt} of {attempts.maximum})"
        )
        report = IngestReport(
            file_error="processing_failed",
            issues=[Issue(rule="timeout", message=f"Processing did not finish within the ingest function's time limit; {then}")],
        )
        try:
            self._uploads.end_upload(upload, "failed" if final else "processing", report, utc_now(), claim=attempts.claim)
        except Exception:
            logger.exception("could not record the timeout")

    def _discard_attempts(self, upload: Upload, only: str | None = None, keep: str | None = None) -> None:
        """Nothing half-written: the files of attempt `only` (or of every attempt but `keep`) are
        deleted. Called only by the attempt that holds the claim, or for its own folder: no end can
        point at what is deleted. Should this fail, the orphan sweep removes them later."""
        s3 = self._scopes.s3(upload.owner)
        bucket = self._settings.data_bucket
        try:
            for root in ATTEMPT_ROOTS:
                folder = f"{root}/{upload_prefix(upload.owner, upload.dataset_id, upload.upload_id)}/"
                if only is not None:
                    folder = attempt_prefix(root, upload.owner, upload.dataset_id, upload.upload_id, only)
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
                    for found in page.get("Contents", []):
                        attempt, _, rest = found["Key"][len(folder) :].partition("/")
                        if only is not None or (attempt.startswith("a") and rest and attempt != keep):
                            s3.delete_object(Bucket=bucket, Key=found["Key"])
        except Exception:
            logger.warning("attempt files left for the orphan sweep", extra={"upload": upload.upload_id})

    def _store(self, path: Path, key: str, owner: str) -> None:
        encryption = sse_kms(self._department_keys.key_of(owner))
        self._scopes.s3(owner).upload_file(str(path), self._settings.data_bucket, key, ExtraArgs=encryption)

    def _store_sealed(self, path: Path, key: str, data_key: bytes, owner: str) -> None:
        """A vault file, sealed with the dataset's data key before it leaves the function."""
        sealed = path.with_suffix(".sealed")
        with path.open("rb") as source, sealed.open("wb") as target:
            for chunk in seal_stream(source, data_key, key.encode()):
                target.write(chunk)
        path.unlink()
        self._store(sealed, key, owner)

    def _reject(self, upload: Upload, report: IngestReport, claim: str) -> IngestResult:
        self._scopes.s3(upload.owner).put_object(
            Bucket=self._settings.data_bucket,
            Key=quarantine_key(upload.owner, upload.dataset_id, upload.upload_id, claim, "report.json"),
            Body=report.model_dump_json(indent=2).encode(),
            ContentType="application/json",
            **sse_kms(self._department_keys.key_of(upload.owner)),
        )
        if not self._uploads.end_upload(upload, "rejected", report, utc_now(), claim=claim):
            raise Conflict(f"Upload {upload.upload_id} is held by another attempt")  # this attempt stands down
        upload.status, upload.report = "rejected", report
        self.settle(upload)
        return IngestResult("rejected")

    # -- after an end
    def settle(self, upload: Upload, version: DatasetVersion | None = None, dataset: Dataset | None = None) -> None:
        """The after-steps of an upload's end, each idempotent, then its settlement marker goes: the
        audit entry (appended once), the landing original (deleted once published, tagged for the
        lifecycle rules otherwise), and for a version its query table and its announcement. A step
        that fails raises: the marker stays, and a redelivery or the sweep finishes the job."""
        if upload.status == "published" and upload.version is not None:
            version = version or self._uploads.get_version(upload.dataset_id, upload.version)
            details: dict[str, object] = {"version": version.version, "rows": version.rows}
            details["rows_rejected"] = version.report.rows_rejected
            self._record(upload, "PublishVersion", "allow", details, once=f"publish:{upload.dataset_id}:{upload.upload_id}")
            self._scopes.s3(upload.owner).delete_object(Bucket=self._settings.data_bucket, Key=upload.landing_key)
            self._announce(upload, version, dataset)
        elif upload.status in ("rejected", "failed"):
            report = upload.report or IngestReport()
            rule = report.issues[0].rule if report.issues else ""
            if upload.status == "rejected":
                details = {"reason": report.file_error or "invalid_rows", "rows_rejected": report.rows_rejected}
                self._record(upload, "RejectUpload", "deny", details, once=f"reject:{upload.dataset_id}:{upload.upload_id}")
            else:
                details = {"reason": "processing_failed", "rule": rule}
                # A failed upload may be redriven and fail again: each end is its own entry.
                key = f"failed:{upload.dataset_id}:{upload.upload_id}:{upload.claim or upload.updated_at}"
                self._record(upload, "IngestFailed", "deny", details, once=key)
            tag = REJECTED_TAG if upload.status == "rejected" else FAILED_TAG
            self._scopes.s3(upload.owner).put_object_tagging(
                Bucket=self._settings.data_bucket, Key=upload.landing_key, Tagging={"TagSet": [{"Key": tag[0], "Value": tag[1]}]}
            )
        else:
            return
        self._uploads.settled(upload.dataset_id, upload.upload_id, upload.status)

    def sweep_settlements(self, older_than_seconds: int = SETTLE_AFTER_SECONDS) -> int:
        """Finish the after-steps that a function left when it died (run on a schedule)."""
        finished = 0
        for dataset_id, upload_id, status in self._uploads.pending_settlements(older_than_seconds):
            upload = self._uploads.get_upload(dataset_id, upload_id)
            if upload is None or upload.status != status:
                continue  # a later end wrote its own marker
            try:
                self.settle(upload)
                finished += 1
            except Exception:
                logger.exception("settlement left for the next sweep", extra={"upload": upload_id})
        return finished

    def _record(self, upload: Upload, action: str, decision: str, details: dict[str, object], once: str) -> None:
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
            once=once,
        )

    def _announce(self, upload: Upload, version: DatasetVersion, dataset: Dataset | None = None) -> None:
        if self._uploads.is_announced(upload.dataset_id, upload.upload_id):
            return
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
