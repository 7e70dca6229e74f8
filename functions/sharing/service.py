"""Access requests, stewards' decisions, grants and governed reads. Every operation goes through
one `authorize()`; a read answers with short-lived presigned URLs, never with the data itself."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from functions.catalog.models import Dataset
from functions.catalog.service import CatalogService
from functions.core.clock import moment, utc_now
from functions.core.errors import (
    Conflict,
    DatasetNotFound,
    DepartmentNotFound,
    Forbidden,
    GrantExpired,
    GrantRevoked,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
)
from functions.core.events import AccessRequestChanged, EventDetail, EventPublisher, GrantChanged
from functions.core.idempotency import AlreadyCommitted
from functions.core.observability import logger
from functions.core.scoped import DepartmentScopes
from functions.identity.directory import DirectoryRepository
from functions.identity.models import Caller
from functions.ingest.repository import IngestRepository
from functions.policy.access import AccessControl
from functions.sharing.models import (
    AccessRequest,
    AccessRequestCreate,
    AccessRequestList,
    Approval,
    DataAccess,
    Decision,
    Denial,
    Grant,
    GrantCreate,
    GrantTerms,
    PresignedFile,
    TagGrantCreate,
    linked_own_columns,
)
from functions.sharing.placement import BuiltView, ViewJanitor
from functions.sharing.repository import SharingRepository

URL_LIFETIME_SECONDS = 300
# (dataset, version, its files, grant, now, the grantee's own dataset re-keyed for linkage?) -> (key, size)
ViewBuilder = Callable[[Dataset, int, list[str], Grant, str, bool], BuiltView]


def _until(value: str) -> str:
    """An ISO date or date-time as a comparable UTC date-time text."""
    try:
        return moment(value).isoformat(timespec="seconds")
    except ValueError:
        raise InvalidRequest(f"{value!r} is not an ISO 8601 date or date-time") from None


class SharingService:
    def __init__(
        self,
        catalog: CatalogService,
        sharing: SharingRepository,
        versions: IngestRepository,
        bucket: str,
        build_view: ViewBuilder,
        access: AccessControl,
        events: EventPublisher,
        scopes: DepartmentScopes | None = None,
        clock: Callable[[], str] = utc_now,
        k_floor: int = 5,
        directory: DirectoryRepository | None = None,
    ) -> None:
        self._k_floor = k_floor
        self._directory = directory
        self._access = access
        self._events = events
        self._catalog = catalog
        self._sharing = sharing
        self._versions = versions
        self._bucket = bucket
        self._build_view = build_view
        self._scopes = scopes or DepartmentScopes("")
        self._clock = clock

    # -- requests
    def request_access(
        self, caller: Caller, dataset_id: str, request: AccessRequestCreate, request_id: str = ""
    ) -> AccessRequest:
        # One decision: a refusal already answers "not found" when the caller may not see the dataset.
        dataset = self._catalog.authorized(caller, "RequestAccess", dataset_id, request_id, {"purpose": request.purpose_category})
        _check(GrantTerms(columns=request.columns), dataset)
        _check_legal_basis(dataset, request.legal_basis)
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
        filed = _request_changed(access_request, "filed", caller.principal_id, access_request.created_at)
        try:
            self._announce(self._sharing.put_request(access_request, [filed]), [filed])
        except AlreadyCommitted as earlier:
            return AccessRequest.model_validate_json(earlier.result)
        return access_request

    def pending_requests(
        self, caller: Caller, request_id: str = "", limit: int = 50, cursor: str | None = None
    ) -> AccessRequestList:
        """A page of the requests waiting for the caller's department, with their datasets' titles
        and how many wait in all (one query, one batch of datasets, one count)."""
        self._manage_department(caller, request_id, {"list": "pending-requests"})
        requests, next_cursor = self._sharing.requests_page(caller.department_id, "pending", limit, cursor)
        datasets = self._catalog.repository.get_many(sorted({r.dataset_id for r in requests})) if requests else {}
        waiting = (
            len(requests)
            if cursor is None and next_cursor is None
            else self._sharing.count_requests(caller.department_id, "pending")
        )
        return AccessRequestList(
            requests=requests,
            titles={dataset_id: dataset.title for dataset_id, dataset in datasets.items()},
            pending=waiting,
            next_cursor=next_cursor,
        )

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
        events = [
            _request_changed(access_request, "approved", caller.principal_id, grant.created_at, approval.note),
            _grant_changed(grant, "granted", caller.principal_id, grant.created_at),
        ]
        try:
            self._announce(self._sharing.decide(access_request, grant, events), events)
        except AlreadyCommitted as earlier:
            return Grant.model_validate_json(earlier.result)
        return grant

    def deny(
        self, caller: Caller, dataset_id: str, access_request_id: str, denial: Denial, request_id: str = ""
    ) -> AccessRequest:
        _, access_request = self._decidable(caller, dataset_id, access_request_id, request_id, "deny")
        access_request.status = "denied"
        access_request.decision = Decision(by=caller.principal_id, at=self._clock(), reason=denial.reason)
        denied = _request_changed(access_request, "denied", caller.principal_id, access_request.decision.at, denial.reason)
        try:
            self._announce(self._sharing.decide(access_request, None, [denied]), [denied])
        except AlreadyCommitted as earlier:
            return AccessRequest.model_validate_json(earlier.result)
        return access_request

    # -- grants
    def grant(self, caller: Caller, dataset_id: str, request: GrantCreate, request_id: str = "") -> Grant:
        dataset = self._catalog.authorized(
            caller, "ManageGrants", dataset_id, request_id, {"grant_to": request.grantee_department}
        )
        return self._give(caller, self._new_grant(caller, dataset, request, None))

    def grant_by_tags(self, caller: Caller, request: TagGrantCreate, request_id: str = "") -> Grant:
        self._manage_department(caller, request_id, {"grant_to": request.grantee_department, "tags": request.tags})
        if request.grantee_department == caller.department_id:
            raise InvalidRequest("A department needs no grant on its own datasets")
        terms = GrantTerms(expires_at=_until(request.terms.expires_at) if request.terms.expires_at else None)
        grant = Grant(
            **request.model_dump(exclude={"terms", "tags", "max_classification"}),
            terms=terms,
            tags=sorted(set(request.tags)),
            max_classification=request.max_classification,
            grant_id="g" + secrets.token_hex(12),
            owner=caller.department_id,
            created_by=caller.principal_id,
            created_at=self._clock(),
        )
        return self._give(caller, grant)

    def grants(self, caller: Caller, dataset_id: str, request_id: str = "") -> list[Grant]:
        """The grants about one dataset: on it, and on tags it carries (live or not: their status says)."""
        dataset = self._catalog.authorized(caller, "ManageGrants", dataset_id, request_id, {"list": "grants"})
        return self._with_budgets([g for g in self._sharing.grants_of(dataset.owner) if g.about(dataset)])

    def department_grants(self, caller: Caller, direction: str, request_id: str = "") -> list[Grant]:
        """Grants the caller's department gave (stewards) or received (any member)."""
        if direction == "given":
            self._manage_department(caller, request_id, {"list": "grants-given"})
            return self._with_budgets(self._sharing.grants_of(caller.department_id))
        self._access.require_own_inbox(caller)
        received = self._sharing.grants_to(caller.department_id)
        return self._with_budgets([g for g in received if g.grantee_principal in (None, caller.principal_id)])

    def _with_budgets(self, grants: list[Grant]) -> list[Grant]:
        """Grants as listed: with their real status (expired when past their expiry), and private
        ones with what their grantee has spent on the dataset (one read per pair)."""
        spent: dict[tuple[str, str], float] = {}
        shown = []
        now = moment(self._clock())
        for grant in grants:
            if grant.status == "active" and grant.terms.expires_at and moment(grant.terms.expires_at) <= now:
                grant = grant.model_copy(update={"status": "expired"})
            if grant.dataset_id and grant.terms.aggregate is not None and grant.terms.aggregate.privacy is not None:
                pair = (grant.dataset_id, grant.grantee_department)
                if pair not in spent:
                    spent[pair] = self._sharing.privacy_spent(*pair)
                grant = grant.model_copy(update={"privacy_spent": spent[pair]})
            shown.append(grant)
        return shown

    def revoke(self, caller: Caller, dataset_id: str, grant_id: str, request_id: str = "") -> Grant:
        dataset = self._catalog.authorized(caller, "ManageGrants", dataset_id, request_id, {"revoke": grant_id})
        found = [g for g in self._sharing.grants_of(dataset.owner) if g.grant_id == grant_id and g.dataset_id == dataset_id]
        if not found:
            raise NotFound(f"Dataset {dataset_id} has no grant {grant_id}")
        return self._revoke(caller, found[0])

    def revoke_grant(self, caller: Caller, grant_id: str, request_id: str = "") -> Grant:
        """Revoke any grant the caller's department gave, by id (tag grants have no dataset)."""
        self._manage_department(caller, request_id, {"revoke": grant_id})
        found = [g for g in self._sharing.grants_of(caller.department_id) if g.grant_id == grant_id]
        if not found:
            raise NotFound(f"Department {caller.department_id} gave no grant {grant_id}")
        return self._revoke(caller, found[0])

    def _give(self, caller: Caller, grant: Grant) -> Grant:
        granted = _grant_changed(grant, "granted", caller.principal_id, grant.created_at)
        try:
            self._announce(self._sharing.put_grant(grant, [granted]), [granted])
        except AlreadyCommitted as earlier:
            return Grant.model_validate_json(earlier.result)
        return grant

    def _revoke(self, caller: Caller, grant: Grant) -> Grant:
        now = self._clock()
        revoked = grant.model_copy(update={"status": "revoked", "revoked_at": now, "revoked_by": caller.principal_id})
        event = _grant_changed(revoked, "revoked", caller.principal_id, now)
        try:
            self._announce(self._sharing.revoke(grant, caller.principal_id, now, [event], revoked), [event])
        except AlreadyCommitted as earlier:
            return Grant.model_validate_json(earlier.result)
        try:
            ViewJanitor(self._bucket, self._scopes).forget_grant(grant)
        except Exception:
            logger.warning("views of a revoked grant left for the sweep", extra={"grant": grant.grant_id})
        return revoked

    def _announce(self, outbox_entry: str | None, events: list[EventDetail]) -> None:
        """Publish the events of a committed change and clear them from the outbox. The change is
        committed whatever happens here, and the caller is told it succeeded: if the bus or the
        clearing fails, the outbox sweeper publishes (again: consumers dedupe on each event's key)."""
        try:
            self._events.publish(*events)
            if outbox_entry:
                self._sharing.clear_outbox(outbox_entry)
        except Exception:
            logger.warning("events left in the outbox for the sweeper", extra={"entry": outbox_entry})

    def _manage_department(self, caller: Caller, request_id: str, details: dict[str, object]) -> None:
        self._access.require_steward(caller, request_id, details, "Only the department's data stewards manage its grants")

    # -- reads
    def read(
        self,
        caller: Caller,
        dataset_id: str,
        version: int | None,
        grant_id: str | None,
        request_id: str = "",
        linkage: str | None = None,
        fetched: tuple[Dataset, list[Grant]] | None = None,
        decrypt: list[str] | None = None,
    ) -> DataAccess:
        """One dataset read, one grants query, one audited decision (ReadData; a refusal says "not found"
        unless the caller may see the dataset's metadata). `fetched`: the dataset and every grant from
        its owner to the caller's department, when this request has read them already."""
        if linkage is not None:
            return self._read_linked(caller, dataset_id, version, linkage, request_id)
        dataset, candidates = fetched or self._dataset_and_grants(caller, dataset_id)
        number = version or dataset.latest_version
        # The policies decide whether the caller reads on its own right (owner, open data) or under
        # which of its grants; the chosen grant's terms shape what it gets.
        asked: dict[str, object] = {"version": number} | ({"decrypt": decrypt} if decrypt else {})
        grant = self._decide_read(caller, dataset, candidates, grant_id, request_id, asked)
        if decrypt:
            grant = self._owner_decrypting(caller, dataset, grant, decrypt)
        columns = grant.terms.columns if grant and grant.terms.columns else list(dataset.table_schema.properties)
        details: dict[str, object] = {
            "version": number,
            "grant": grant.grant_id if grant else None,
            "columns": columns,
            "purpose": grant.purpose_category if grant else "owner-or-public",
        }
        version_files, version_bytes = self._version_files(dataset, number)
        suppressed = None
        if grant is not None and grant.needs_view(dataset):
            view = self._build_view(dataset, number, version_files, grant, self._clock(), False)
            files, suppressed = [(view.key, view.size)], view.suppressed
        else:
            files = [(key, version_bytes) for key in version_files]
        restricted = bool(grant and grant.needs_view(dataset))
        return DataAccess(
            dataset_id=dataset_id,
            version=number,
            grant_id=grant.grant_id if grant else None,
            restricted=restricted,
            columns=grant.terms.aggregate.columns() if grant and grant.terms.aggregate else columns,
            files=self._presigned(files, dataset),
            audit=details,
            suppressed=suppressed,
        )

    def _owner_decrypting(self, caller: Caller, dataset: Dataset, grant: Grant | None, decrypt: list[str]) -> Grant:
        """The owner reads its own encrypted values on its own right (the read is audited with the
        columns): served, like a grant that decrypts, from a clear view of its own, swept after a day."""
        if grant is not None or dataset.owner != caller.department_id:
            raise InvalidRequest("Only the owner decrypts on its own right; a grantee's clear columns come with its grant")
        encrypted = [n for n, p in dataset.table_schema.personal_columns().items() if p.protection == "encrypt"]
        unknown = sorted(set(decrypt) - set(encrypted))
        if unknown:
            raise InvalidRequest(f"Not encrypted columns of {dataset.dataset_id}: {', '.join(unknown)} (encrypted: {encrypted})")
        digest = hashlib.sha256(f"{dataset.dataset_id}\x00{caller.department_id}".encode()).hexdigest()
        return Grant(
            grant_id="g" + digest[:24],
            dataset_id=dataset.dataset_id,
            owner=dataset.owner,
            grantee_department=dataset.owner,
            purpose="The owner reads its own encrypted values",
            purpose_category="operations",
            created_by=caller.principal_id,
            created_at=self._clock(),
            terms=GrantTerms(decrypt_columns=sorted(set(decrypt))),
        )

    def _read_linked(self, caller: Caller, dataset_id: str, version: int | None, linkage: str, request_id: str) -> DataAccess:
        """The caller's own dataset with its identifiers of the kinds a linkage grant links re-keyed
        into that grant's linkage space, so they join with the grant's view and with nothing else."""
        dataset = self._catalog.load(dataset_id)
        number = version or dataset.latest_version
        received = [g for g in self._sharing.grants_to(caller.department_id) if g.grant_id == linkage]
        grant = received[0] if received and received[0].terms.linked_columns else None
        columns = linked_own_columns(dataset, grant.linkage_kinds) if grant else []
        details: dict[str, object] = {"version": number, "linkage": linkage, "columns": columns}
        self._catalog.require(caller, "ReadData", dataset, [], purpose="linkage", request_id=request_id, details=details)
        if dataset.owner != caller.department_id:
            raise InvalidRequest("Only a department's own datasets are re-keyed for a linkage grant it holds")
        # The linkage grant lives if the policies would let the caller read what it was given under it.
        granted = self._catalog.load(grant.dataset_id) if grant is not None and grant.dataset_id else None
        live = (
            granted is not None and self._catalog.decide(caller, "ReadData", granted, received, linkage, audit=False)[0].allowed
        )
        if grant is None or not live:
            raise NotFound(f"Your department holds no live linkage grant {linkage}")
        if dataset_id not in grant.terms.linked_datasets:
            raise InvalidRequest(f"Linkage grant {linkage} links {', '.join(grant.terms.linked_datasets)}, not {dataset_id}")
        if number <= grant.linked_after.get(dataset_id, 0):
            raise InvalidRequest(f"Version {number} of {dataset_id} was published before linkage grant {linkage} was made")
        if not columns:
            raise InvalidRequest(f"{dataset_id} has no pseudonymised column of the kinds {grant.linkage_kinds} links")
        version_files, _ = self._version_files(dataset, number)
        view = self._build_view(dataset, number, version_files, grant, self._clock(), True)
        files = [(view.key, view.size)]
        return DataAccess(
            dataset_id=dataset_id,
            version=number,
            grant_id=grant.grant_id,
            restricted=True,
            columns=dataset.table_schema.stored_columns(),
            files=self._presigned(files, dataset),
            audit=details,
        )

    def _decide_read(
        self,
        caller: Caller,
        dataset: Dataset,
        candidates: list[Grant],
        grant_id: str | None,
        request_id: str,
        asked: dict[str, object],
    ) -> Grant | None:
        """The grant a read is under (None: its own right), decided and audited. Under a grant, the
        audit entry is written only while that grant is stored active (one transaction): a grant
        revoked while the read was decided, or one the index of grants missed, lets nothing through.
        Refused, or with the grant changed meanwhile, the read is decided once more on the grants as
        stored now (the index is a shortcut, never the authority)."""
        guard = self._sharing.still_active
        try:
            return self._catalog.require(caller, "ReadData", dataset, candidates, grant_id, "read", request_id, asked, guard)
        except (PreconditionFailed, NotFound, Forbidden) as refused:
            stored = self._grants_between(caller, dataset)
            if not isinstance(refused, PreconditionFailed) and _same(stored, candidates):
                _explain_ended(caller, dataset, candidates, grant_id, self._clock())
                raise
        try:
            return self._catalog.require(caller, "ReadData", dataset, stored, grant_id, "read", request_id, asked, guard)
        except PreconditionFailed:
            raise Conflict("The grant changed while the read was decided: try again") from None
        except (NotFound, Forbidden):
            _explain_ended(caller, dataset, stored, grant_id, self._clock())
            raise

    def _dataset_and_grants(self, caller: Caller, dataset_id: str) -> tuple[Dataset, list[Grant]]:
        """The dataset and every grant its owner gave the caller's department, in one round trip."""
        dataset, grants = self._sharing.dataset_and_grants(self._catalog.repository, dataset_id, caller.department_id)
        if dataset is None:
            raise DatasetNotFound(f"No dataset {dataset_id}")
        return dataset, grants

    def _grants_between(self, caller: Caller, dataset: Dataset) -> list[Grant]:
        if dataset.owner == caller.department_id:
            return []
        return self._sharing.grants_between(dataset.owner, caller.department_id)

    def _version_files(self, dataset: Dataset, number: int) -> tuple[list[str], int]:
        if number < 1:
            raise NotFound(f"Dataset {dataset.dataset_id} has no version yet")
        if number == dataset.latest_version and dataset.latest_files:
            return dataset.latest_files, dataset.latest_bytes
        published = self._versions.get_version(dataset.dataset_id, number)
        return published.files, published.bytes

    def _presigned(self, files: list[tuple[str, int]], dataset: Dataset) -> list[PresignedFile]:
        """URLs signed by a session acting for the data's owner: they reach its objects and no other."""
        s3 = self._scopes.s3(dataset.owner, dataset.dataset_id)
        expires = (datetime.now(UTC) + timedelta(seconds=URL_LIFETIME_SECONDS)).isoformat(timespec="seconds")
        return [
            PresignedFile(
                url=s3.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=URL_LIFETIME_SECONDS
                ),
                size_bytes=size,
                expires_at=expires,
            )
            for key, size in files
        ]

    def _decidable(
        self, caller: Caller, dataset_id: str, access_request_id: str, request_id: str, what: str
    ) -> tuple[Dataset, AccessRequest]:
        dataset = self._catalog.authorized(caller, "ManageGrants", dataset_id, request_id, {what: access_request_id})
        return dataset, self._sharing.get_request(dataset_id, access_request_id)

    def _new_grant(self, caller: Caller, dataset: Dataset, request: GrantCreate, access_request: str | None) -> Grant:
        _check(request.terms, dataset)
        aggregate = request.terms.aggregate
        if aggregate is not None and dataset.table_schema.is_personal() and aggregate.min_group_size < self._k_floor:
            raise InvalidRequest(
                f"groups of data about people hold at least {self._k_floor} subjects here (the platform's floor): "
                f"min_group_size {aggregate.min_group_size} is too small"
            )
        if request.terms.expires_at is not None:
            request.terms.expires_at = _until(request.terms.expires_at)
        if request.grantee_department == dataset.owner:
            # A grant to itself would be ignored: the owner reads on its own right (`decrypt` to see its encrypted values).
            raise InvalidRequest("A department reads its own data on its own right, not under a grant to itself")
        self._check_grantee(request)
        _check_legal_basis(dataset, request.legal_basis)
        if request.terms.linked_columns:
            # Linking personal data across departments is a decision with a legal basis and an end.
            if request.legal_basis in (None, "none"):
                raise InvalidRequest("Linking personal columns needs a legal basis other than `none`")
            if request.terms.expires_at is None:
                raise InvalidRequest("Linking personal columns needs an expiry (terms.expires_at)")
            if not request.terms.linked_datasets:
                raise InvalidRequest("Linking names the grantee's own datasets it links (terms.linked_datasets)")
        linked_after = {name: self._linked_watermark(name, request.grantee_department) for name in request.terms.linked_datasets}
        personal = dataset.table_schema.personal_columns()
        return Grant(
            **request.model_dump(),
            grant_id="g" + secrets.token_hex(12),
            dataset_id=dataset.dataset_id,
            owner=dataset.owner,
            created_by=caller.principal_id,
            created_at=self._clock(),
            access_request=access_request,
            linkage_kinds=sorted({personal[c].category for c in request.terms.linked_columns}),
            linked_after=linked_after,
        )

    def _check_grantee(self, request: GrantCreate) -> None:
        """A grant names a department (and principal) the directory holds: a typo is not a grant."""
        if self._directory is None:
            return
        if self._directory.get_department(request.grantee_department) is None:
            raise DepartmentNotFound(f"No department {request.grantee_department}: a grant names a registered department")
        principal = request.grantee_principal
        if principal is not None and self._directory.get_principal(request.grantee_department, principal) is None:
            raise NotFound(f"{request.grantee_department} has no principal {principal}")

    def _linked_watermark(self, dataset_id: str, grantee: str) -> int:
        """The latest version of a grantee dataset a linkage grant names (0 if it does not exist yet)."""
        try:
            linked = self._catalog.load(dataset_id)
        except DatasetNotFound:
            return 0
        if linked.owner != grantee:
            raise InvalidRequest(f"{dataset_id} is not a dataset of {grantee}: a linkage grant re-keys only the grantee's own")
        return linked.latest_version


def _same(grants: list[Grant], others: list[Grant]) -> bool:
    return sorted(g.model_dump_json() for g in grants) == sorted(g.model_dump_json() for g in others)


def _explain_ended(caller: Caller, dataset: Dataset, candidates: list[Grant], grant_id: str | None, now: str) -> None:
    """A read refused to a department that held a grant on the dataset which has ended is told so
    (when and how), not "not found": it knew of the dataset, and should know why it stopped."""
    addressed = [
        g
        for g in candidates
        if g.about(dataset)
        and g.grantee_principal in (None, caller.principal_id)
        and (grant_id is None or g.grant_id == grant_id)
    ]
    at = moment(now)
    if any(g.status == "active" and not (g.terms.expires_at and moment(g.terms.expires_at) <= at) for g in addressed):
        return  # a live grant was refused for another reason (a suspension, say): that answer stands
    revoked = sorted((g for g in addressed if g.status == "revoked"), key=lambda g: g.revoked_at or "")
    expired = sorted((g for g in addressed if g.status == "active" and g.terms.expires_at), key=lambda g: str(g.terms.expires_at))
    if expired:
        last = expired[-1]
        raise GrantExpired(f"Your grant {last.grant_id} on {dataset.dataset_id} expired at {last.terms.expires_at}")
    if revoked:
        last = revoked[-1]
        raise GrantRevoked(f"Your grant {last.grant_id} on {dataset.dataset_id} was revoked at {last.revoked_at}")


def _check_legal_basis(dataset: Dataset, legal_basis: str | None) -> None:
    """Nobody's basis is assumed: sharing data about people names the one it rests on."""
    if dataset.table_schema.is_personal() and legal_basis in (None, "none"):
        raise InvalidRequest(f"{dataset.dataset_id} is about people: sharing it names its legal basis (legal_basis), not `none`")


def _request_changed(
    access_request: AccessRequest, change: Literal["filed", "approved", "denied"], by: str, at: str, reason: str = ""
) -> AccessRequestChanged:
    return AccessRequestChanged(
        change=change,
        access_request_id=access_request.request_id,
        dataset_id=access_request.dataset_id,
        owner=access_request.owner,
        requester_department=access_request.requester_department,
        requester_principal=access_request.requester_principal,
        purpose_category=access_request.purpose_category,
        by=by,
        at=at,
        reason=reason,
        grant_id=access_request.decision.grant_id if access_request.decision else None,
    )


def _grant_changed(grant: Grant, change: Literal["granted", "revoked"], by: str, at: str) -> GrantChanged:
    return GrantChanged(
        change=change,
        grant_id=grant.grant_id,
        owner=grant.owner,
        grantee_department=grant.grantee_department,
        grantee_principal=grant.grantee_principal,
        dataset_id=grant.dataset_id,
        tags=grant.tags,
        by=by,
        at=at,
        access_request=grant.access_request,
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
