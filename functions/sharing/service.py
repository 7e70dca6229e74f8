"""Access requests, stewards' decisions, grants and governed reads. Every operation goes through
one `authorize()`; a read answers with short-lived presigned URLs, never with the data itself."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.catalog.models import Dataset
from functions.catalog.service import CatalogService
from functions.core import aws
from functions.core.errors import Forbidden, InvalidRequest, NotFound
from functions.identity.models import Caller
from functions.ingest.repository import IngestRepository
from functions.sharing.models import (
    AccessRequest,
    AccessRequestCreate,
    Approval,
    DataAccess,
    Decision,
    Denial,
    Grant,
    GrantCreate,
    GrantTerms,
    PresignedFile,
)
from functions.sharing.repository import SharingRepository

URL_LIFETIME_SECONDS = 300
ViewBuilder = Callable[[Dataset, int, list[str], Grant, str], tuple[str, int]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _until(value: str) -> str:
    """An ISO date or date-time as a comparable UTC date-time text."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{value!r} is not an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class SharingService:
    s3 = aws.LazyClient("s3")

    def __init__(
        self,
        catalog: CatalogService,
        sharing: SharingRepository,
        versions: IngestRepository,
        bucket: str,
        build_view: ViewBuilder,
        s3: Any = None,
        clock: Callable[[], str] = _now,
    ) -> None:
        self._catalog = catalog
        self._sharing = sharing
        self._versions = versions
        self._bucket = bucket
        self._build_view = build_view
        self._s3 = s3
        self._clock = clock

    # -- requests
    def request_access(
        self, caller: Caller, dataset_id: str, request: AccessRequestCreate, request_id: str = ""
    ) -> AccessRequest:
        # One decision: a refusal already answers "not found" when the caller may not see the dataset.
        dataset = self._catalog.authorized(caller, "RequestAccess", dataset_id, request_id, {"purpose": request.purpose_category})
        _check(GrantTerms(columns=request.columns), dataset)
        access_request = AccessRequest(
            **request.model_dump(exclude={"until"}),
            until=_until(request.until),
            request_id="r" + secrets.token_hex(12),
            dataset_id=dataset_id,
            owner=dataset.owner,
            requester_department=caller.department_id,
            requester_principal=caller.principal_id,
            created_at=self._clock(),
        )
        self._sharing.put_request(access_request)
        return access_request

    def pending_requests(self, caller: Caller, request_id: str = "") -> list[AccessRequest]:
        if not caller.is_steward:
            raise Forbidden("Only data stewards review access requests")
        return self._sharing.requests_to(caller.department_id, "pending")

    def approve(self, caller: Caller, dataset_id: str, access_request_id: str, approval: Approval, request_id: str = "") -> Grant:
        dataset, access_request = self._decidable(caller, dataset_id, access_request_id, request_id, "approve")
        asked = GrantTerms(columns=access_request.columns, expires_at=access_request.until)
        terms = approval.terms or asked
        if approval.terms is not None:
            terms = _narrowed(asked, approval.terms)
        grant = self._new_grant(
            caller,
            dataset,
            GrantCreate(
                grantee_department=access_request.requester_department,
                purpose=access_request.purpose,
                purpose_category=access_request.purpose_category,
                legal_basis=access_request.legal_basis,
                terms=terms,
            ),
            access_request.request_id,
        )
        access_request.status = "approved"
        access_request.decision = Decision(
            by=caller.principal_id, at=self._clock(), reason=approval.note, grant_id=grant.grant_id
        )
        self._sharing.decide(access_request)
        self._sharing.put_grant(grant)
        return grant

    def deny(
        self, caller: Caller, dataset_id: str, access_request_id: str, denial: Denial, request_id: str = ""
    ) -> AccessRequest:
        _, access_request = self._decidable(caller, dataset_id, access_request_id, request_id, "deny")
        access_request.status = "denied"
        access_request.decision = Decision(by=caller.principal_id, at=self._clock(), reason=denial.reason)
        self._sharing.decide(access_request)
        return access_request

    # -- grants
    def grant(self, caller: Caller, dataset_id: str, request: GrantCreate, request_id: str = "") -> Grant:
        dataset = self._catalog.authorized(
            caller, "ManageGrants", dataset_id, request_id, {"grant_to": request.grantee_department}
        )
        grant = self._new_grant(caller, dataset, request, None)
        self._sharing.put_grant(grant)
        return grant

    def grants(self, caller: Caller, dataset_id: str, request_id: str = "") -> list[Grant]:
        self._catalog.authorized(caller, "ManageGrants", dataset_id, request_id, {"list": "grants"})
        return self._sharing.grants_of_dataset(dataset_id)

    def revoke(self, caller: Caller, dataset_id: str, grant_id: str, request_id: str = "") -> Grant:
        self._catalog.authorized(caller, "ManageGrants", dataset_id, request_id, {"revoke": grant_id})
        found = [g for g in self._sharing.grants_of_dataset(dataset_id) if g.grant_id == grant_id]
        if not found:
            raise NotFound(f"Dataset {dataset_id} has no grant {grant_id}")
        return self._sharing.revoke(found[0], caller.principal_id, self._clock())

    # -- reads
    def read(
        self, caller: Caller, dataset_id: str, version: int | None, grant_id: str | None, request_id: str = ""
    ) -> DataAccess:
        # One dataset read, one grants query, one audited decision (ReadData; a refusal says "not found"
        # unless the caller may see the dataset's metadata).
        dataset = self._catalog.load(dataset_id)
        grants = self._catalog.live_grants(caller, dataset)
        if grant_id is not None:
            grants = [g for g in grants if g.grant_id == grant_id]  # only the grant asked for may decide
        grant = (
            _choose(grants, grant_id) if dataset.owner != caller.department_id and dataset.classification != "public" else None
        )
        number = version or dataset.latest_version
        columns = grant.terms.columns if grant and grant.terms.columns else list(dataset.table_schema.properties)
        details: dict[str, object] = {
            "version": number,
            "grant": grant.grant_id if grant else None,
            "columns": columns,
            "purpose": grant.purpose_category if grant else "owner-or-public",
        }
        self._catalog.require(caller, "ReadData", dataset, request_id, details, grants)
        if number < 1:
            raise NotFound(f"Dataset {dataset_id} has no version yet")
        published = self._versions.get_version(dataset_id, number)
        if grant is not None and grant.terms.restricted():
            key, size = self._build_view(dataset, number, published.files, grant, self._clock())
            files = [(key, size)]
        else:
            files = [(key, published.bytes) for key in published.files]
        expires = (datetime.now(UTC) + timedelta(seconds=URL_LIFETIME_SECONDS)).isoformat(timespec="seconds")
        urls = [
            PresignedFile(
                url=self.s3.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=URL_LIFETIME_SECONDS
                ),
                size_bytes=size,
                expires_at=expires,
            )
            for key, size in files
        ]
        restricted = bool(grant and grant.terms.restricted())
        return DataAccess(
            dataset_id=dataset_id,
            version=number,
            grant_id=grant.grant_id if grant else None,
            restricted=restricted,
            columns=columns,
            files=urls,
            audit=details,
        )

    def _decidable(
        self, caller: Caller, dataset_id: str, access_request_id: str, request_id: str, what: str
    ) -> tuple[Dataset, AccessRequest]:
        dataset = self._catalog.authorized(caller, "ManageGrants", dataset_id, request_id, {what: access_request_id})
        return dataset, self._sharing.get_request(dataset_id, access_request_id)

    def _new_grant(self, caller: Caller, dataset: Dataset, request: GrantCreate, access_request: str | None) -> Grant:
        _check(request.terms, dataset)
        if request.terms.expires_at is not None:
            request.terms.expires_at = _until(request.terms.expires_at)
        return Grant(
            **request.model_dump(),
            grant_id="g" + secrets.token_hex(12),
            dataset_id=dataset.dataset_id,
            owner=dataset.owner,
            created_by=caller.principal_id,
            created_at=self._clock(),
            access_request=access_request,
        )


def _check(terms: GrantTerms, dataset: Dataset) -> None:
    try:
        terms.check_against(dataset.table_schema)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def _narrowed(asked: GrantTerms, given: GrantTerms) -> GrantTerms:
    """A steward may only narrow what was asked: fewer columns, a filter, masking, an earlier expiry."""
    if asked.columns and given.columns and not set(given.columns) <= set(asked.columns):
        raise InvalidRequest("An approval may narrow the columns asked for, not add to them")
    columns = given.columns or asked.columns
    expiry = min(e for e in (asked.expires_at, given.expires_at) if e) if (asked.expires_at or given.expires_at) else None
    return given.model_copy(update={"columns": columns, "expires_at": expiry})


def _choose(grants: list[Grant], grant_id: str | None) -> Grant | None:
    """The grant a read uses: the one asked for, else an unrestricted one, else the newest."""
    if grant_id is not None:
        return next((g for g in grants if g.grant_id == grant_id), None)
    unrestricted = [g for g in grants if not g.terms.restricted()]
    ordered = sorted(unrestricted or grants, key=lambda g: g.created_at, reverse=True)
    return ordered[0] if ordered else None
