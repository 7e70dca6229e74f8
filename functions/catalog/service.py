"""Catalog operations, each behind one `authorize()` call. Knows nothing of HTTP or Lambda."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from functions.catalog.models import CLASSIFICATION_RANK, Classification, Dataset, DatasetCreate, DatasetPage, DatasetUpdate
from functions.catalog.repository import CatalogQuery, CatalogRepository
from functions.core.clock import utc_now
from functions.core.errors import Conflict, DatasetNotFound, Forbidden, InvalidRequest
from functions.identity.models import Caller
from functions.policy.access import AccessControl
from functions.policy.engine import Resource, uid
from functions.sharing.models import Grant, usable

MAX_PAGE_SIZE = 100
# A listing reads at most this many index pages for one answer, so a selective filter over a large
# catalog returns a short page with a cursor rather than a slow call.
_MAX_PAGES_READ = 10


def dataset_resource(dataset: Dataset, grants: Sequence[Grant] = ()) -> Resource:
    """The dataset as Cedar sees it, with the live grants that can apply to this request."""
    return Resource(
        "Dataset",
        dataset.dataset_id,
        {
            "owner": uid("Department", dataset.owner),
            "classification": dataset.classification,
            "tags": list(dataset.tags),
            "legal_hold": dataset.legal_hold,
            "readers": [uid("Department", g.grantee_department) for g in grants if g.grantee_principal is None],
            "reader_principals": [f"{g.grantee_department}/{g.grantee_principal}" for g in grants if g.grantee_principal],
        },
    )


def applicable(grants: Sequence[Grant], caller: Caller, dataset: Dataset, now: str) -> list[Grant]:
    """The grants that let `caller` use `dataset` now: live, covering it, to the department or to the caller."""
    return usable(grants, dataset, caller.principal_id, now)


class GrantSource(Protocol):
    def grants_between(self, owner: str, grantee: str) -> list[Grant]: ...

    def grants_to(self, department: str) -> list[Grant]: ...


class CatalogService:
    def __init__(
        self,
        repository: CatalogRepository,
        access: AccessControl,
        clock: Callable[[], str] = utc_now,
        grants: GrantSource | None = None,
    ) -> None:
        self._repository = repository
        self._access = access
        self._clock = clock
        self._grants = grants

    def live_grants(self, caller: Caller, dataset: Dataset, between: list[Grant] | None = None) -> list[Grant]:
        """The caller's live grants covering `dataset`, on it or on its tags (one key query, none if the
        request fetched `between`, the owner's grants to the caller's department, already; none for the owner)."""
        if self._grants is None or dataset.owner == caller.department_id:
            return []
        if between is None:
            between = self._grants.grants_between(dataset.owner, caller.department_id)
        return applicable(between, caller, dataset, self._clock())

    def create(
        self,
        caller: Caller,
        request: DatasetCreate,
        request_id: str = "",
        classification_floor: Classification | None = None,
        together_with: list[dict[str, Any]] | None = None,
    ) -> Dataset:
        now = self._clock()
        dataset = Dataset(
            **request.model_dump(by_alias=True),
            owner=caller.department_id,
            created_at=now,
            updated_at=now,
            created_by=caller.principal_id,
            classification_floor=classification_floor,
        )
        self._require(caller, "CreateDataset", dataset, request_id)
        self._repository.create(dataset, together_with)
        return dataset

    def get(self, caller: Caller, dataset_id: str, request_id: str = "") -> Dataset:
        return self.authorized(caller, "ViewDataset", dataset_id, request_id)

    def authorized(
        self, caller: Caller, action: str, dataset_id: str, request_id: str = "", details: dict[str, object] | None = None
    ) -> Dataset:
        """The dataset, if `caller` may do `action` on it (audited); DatasetNotFound or Forbidden otherwise."""
        dataset = self.load(dataset_id)
        self._require(caller, action, dataset, request_id, details)
        return dataset

    def load(self, dataset_id: str) -> Dataset:
        """The dataset without a decision: the caller must authorise before using it."""
        dataset = self._repository.get(dataset_id)
        if dataset is None:
            raise DatasetNotFound(f"No dataset {dataset_id}")
        return dataset

    def visible(self, caller: Caller, dataset_id: str) -> Dataset | None:
        """The dataset if the caller may see its metadata, else None (decided, not audited: used to
        filter references to other datasets, e.g. lineage, never to hand data out)."""
        dataset = self._repository.get(dataset_id)
        if dataset is None:
            return None
        resource = dataset_resource(dataset, self.live_grants(caller, dataset))
        return dataset if self._access.engine.decide(caller, "ViewDataset", resource).allowed else None

    def viewable(self, caller: Caller, dataset: Dataset, grants: list[Grant]) -> bool:
        """Whether the caller may see a dataset already read, with its live grants already fetched
        (decided, not audited: no data goes out on this answer)."""
        return bool(self._access.engine.decide(caller, "ViewDataset", dataset_resource(dataset, grants)).allowed)

    def readable_under(self, caller: Caller, dataset: Dataset) -> tuple[bool, list[Grant]]:
        """Whether `caller` may read `dataset`'s data, and the grants it would read under (decided by
        the policies, not audited: used to shape what metadata shows, never to hand data out)."""
        grants = self.live_grants(caller, dataset)
        allowed = self._access.engine.decide(caller, "ReadData", dataset_resource(dataset, grants)).allowed
        return allowed, grants

    def update(self, caller: Caller, dataset_id: str, update: DatasetUpdate, request_id: str = "") -> Dataset:
        current = self._repository.get(dataset_id)
        if current is None:
            raise DatasetNotFound(f"No dataset {dataset_id}")
        if update.revision is not None and update.revision != current.revision:
            raise Conflict(f"Dataset {dataset_id} is at revision {current.revision}, not {update.revision}")
        self._require(caller, "UpdateDataset", current, request_id, details={"changes": sorted(update.changes())})
        floor = current.classification_floor
        if update.classification and floor and CLASSIFICATION_RANK[update.classification] < CLASSIFICATION_RANK[floor]:
            raise InvalidRequest(f"{dataset_id} is derived from {floor} data: its classification cannot go below {floor}")
        changed = current.model_copy(update=dict(update.changes(), updated_at=self._clock(), revision=current.revision + 1))
        changed = Dataset.model_validate(changed.model_dump(by_alias=True))
        self._repository.update_metadata(changed, sorted(update.changes()), expected_revision=current.revision)
        return changed

    def list(self, caller: Caller, query: CatalogQuery, limit: int, cursor: str | None, request_id: str = "") -> DatasetPage:
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        listing = self._access.authorize(
            caller,
            "ListDatasets",
            Resource("Directory", "catalog"),
            caller.department_id,
            request_id,
            details={"owner": query.owner, "classification": query.classification, "tag": query.tag, "text": query.text},
        )
        if not listing.allowed:
            raise Forbidden("The caller may not list the catalog")
        visible: list[Dataset] = []
        next_cursor: str | None = None
        now = self._clock()
        by_dataset: dict[str, list[Grant]] = {}
        by_tags: list[Grant] = []
        for grant in self._grants.grants_to(caller.department_id) if self._grants else []:
            (by_dataset.setdefault(grant.dataset_id, []) if grant.dataset_id else by_tags).append(grant)
        budget = _MAX_PAGES_READ * limit
        for dataset, resume_after in self._repository.scan_pages(query, page_size=limit, cursor=cursor):
            budget -= 1
            # Listing filters by the same policies as a get, so it never reveals what a get would hide.
            resource = dataset_resource(
                dataset, applicable([*by_dataset.get(dataset.dataset_id, []), *by_tags], caller, dataset, now)
            )
            if self._access.engine.decide(caller, "ViewDataset", resource).allowed:
                visible.append(dataset)
            if len(visible) == limit or budget == 0:
                next_cursor = resume_after
                break
        return DatasetPage(datasets=visible, next_cursor=next_cursor)

    def require(
        self,
        caller: Caller,
        action: str,
        dataset: Dataset,
        request_id: str = "",
        details: dict[str, object] | None = None,
        grants: Sequence[Grant] | None = None,
    ) -> None:
        """Authorise `action` on a dataset already read (with the caller's grants, if already fetched)."""
        self._require(caller, action, dataset, request_id, details, grants)

    def _require(
        self,
        caller: Caller,
        action: str,
        dataset: Dataset,
        request_id: str,
        details: dict[str, object] | None = None,
        grants: Sequence[Grant] | None = None,
    ) -> None:
        resource = dataset_resource(dataset, self.live_grants(caller, dataset) if grants is None else grants)
        decision = self._access.authorize(caller, action, resource, dataset.owner, request_id, details)
        if decision.allowed:
            return
        # Answer "not found" unless the caller may see the dataset: a refusal must not reveal existence.
        if action == "CreateDataset":
            raise Forbidden("The caller may not create datasets")
        if action != "ViewDataset" and self._access.engine.decide(caller, "ViewDataset", resource).allowed:
            raise Forbidden(f"The caller may not {action} on dataset {dataset.dataset_id}")
        raise DatasetNotFound(f"No dataset {dataset.dataset_id}")
