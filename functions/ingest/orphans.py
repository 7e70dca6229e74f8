"""The orphan sweep: files of ingest attempts that died before their upload ended, or that lost the
upload to another attempt and could not clean up. An attempt's files are kept while it holds its
upload's claim and the upload is processing, published or rejected (the version's files, or the
rejected rows a report points at); every other attempt folder is deleted once it is older than a
grace period longer than any attempt can run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.core import aws
from functions.core.layout import ATTEMPT_ROOTS, attempt_of
from functions.core.observability import logger
from functions.core.scoped import DepartmentScopes
from functions.ingest.repository import IngestRepository

# Longer than the ingest queue's visibility timeout: no attempt still running is this old.
GRACE = timedelta(hours=1)
_KEPT = ("processing", "published", "rejected")


def _now() -> datetime:
    return datetime.now(UTC)


class OrphanSweeper:
    s3 = aws.LazyClient("s3")

    def __init__(
        self,
        bucket: str,
        uploads: IngestRepository,
        scopes: DepartmentScopes,
        s3: Any = None,
        clock: Callable[[], datetime] = _now,
        grace: timedelta = GRACE,
    ) -> None:
        self._bucket = bucket
        self._uploads = uploads
        self._scopes = scopes
        self._s3 = s3  # lists the attempt roots (the function's own role); deletes act for the owner
        self._clock = clock
        self._grace = grace

    def sweep(self) -> int:
        """Delete orphaned attempt files; returns how many."""
        cutoff = self._clock() - self._grace
        holders: dict[tuple[str, str], tuple[str, str] | None] = {}
        deleted = 0
        for root in ATTEMPT_ROOTS:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=f"{root}/"):
                for found in page.get("Contents", []):
                    parsed = attempt_of(found["Key"])
                    if parsed is None or found["LastModified"] > cutoff:
                        continue
                    owner, dataset_id, upload_id, attempt = parsed
                    if (dataset_id, upload_id) not in holders:
                        upload = self._uploads.get_upload(dataset_id, upload_id)
                        holders[(dataset_id, upload_id)] = (upload.claim or "", upload.status) if upload else None
                    holder = holders[(dataset_id, upload_id)]
                    if holder is not None and holder[0] == attempt and holder[1] in _KEPT:
                        continue
                    self._scopes.s3(owner).delete_object(Bucket=self._bucket, Key=found["Key"])
                    deleted += 1
        if deleted:
            logger.info("orphaned attempt files deleted", extra={"objects": deleted})
        return deleted
