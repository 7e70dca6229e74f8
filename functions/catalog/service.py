"""Catalog operations, each behind one `authorize()` call. Knows nothing of HTTP or Lambda."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol

from functions.catalog.models import (
    Classification,
    Dataset,
    DatasetCreate,
    DatasetEntry,
    DatasetPage,
    DatasetUpdate,
    check_public,
)
from functions.catalog.repository import CatalogQuery, CatalogRepository
from functions.core.classification import CLASSIFICATION_RANK
from functions.core.clock import utc_now
from functions.core.errors import Conflict, DatasetNotFound, Forbidden, InvalidRequest
from functions.identity.models import Caller
from functions.policy.access import AccessControl, G, HasFacts
from functions.policy.engine import Decision, Resource, uid

MAX_PAGE_SIZE = 100
# A listing reads at most this many index pages for one answer, so a selective filter over a large
# catalog returns a short page with a cursor rather than a slow call.
_MAX_PAGES_READ = 10


def dataset_resource(dataset: Dataset) -> Resource:
    """The dataset as Cedar sees it (grants come in the request's context, not on the dataset)."""
    return Resource(
        "Dataset",
        dataset.dataset_id,
        {
            "owner": uid("Department", dataset.owner),
            "name": dataset.dataset_id,
            "classification": dataset.classification,
            "rank": CLASSIFICATION_RANK[dataset.classification],
            "tags": list(dataset.tags),
            "legal_hold": dataset.legal_hold,
        },
    )


class GrantSource(Protocol):
    def grants_between(self, owner: str, grantee: str) -> Sequence[HasFacts]: ...

    def grants_to(self, department: str) -> Sequence[HasFacts]: ...


def choose(permitted: Sequence[G], grant_id: str | None) -> G | None:
    """Which of the grants that all allow an action it uses: the one asked for, else an unrestricted
    one, else the newest (a preference among permitted grants, not an access rule)."""
    if grant_id is not None:
        return next((g for g in permitted if g.facts().grant_id == grant_id), None)
    ordered = sorted(permitted, key=lambda g: (not g.facts().restricted, g.facts().created_at), reverse=True)
    return ordered[0] if ordered else None


class CoveringGrants(Generic[G]):
    """One department's grants, by what each could cover: a dataset (a grant on it) or its owner's
    datasets (a tag grant, which the policies match on the dataset's tags). The candidates a
    decision on a dataset weighs; the policies decide which, if any, allows."""

    def __init__(self, grants: Iterable[G]) -> None:
        self._by_dataset: dict[str, list[G]] = {}
        self._by_owner: dict[str, list[G]] = {}  # tag grants, by the department that gave them
        for grant in grants:
            facts = grant.facts()
            if facts.dataset_id:
                self._by_dataset.setdefault(facts.dataset_id, []).append(grant)
            else:
                self._by_owner.setdefault(facts.owner, []).append(grant)

    def of(self, dataset: Dataset) -> list[G]:
        return [*self._by_dataset.get(dataset.dataset_id, []), *self._by_owner.get(dataset.owner, [])]


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

    @property
    def repository(self) -> CatalogRepository:
        return self._repository

    def candidates(self, caller: Caller, dataset: Dataset) -> Sequence[HasFacts]:
        """The grants that could let `caller` act on `dataset`: every grant its owner gave the
        caller's department (one key query; none for the owner). Which of them lives and covers
        the dataset is the policies' to say."""
        if self._grants is None or dataset.owner == caller.department_id:
            return []
        return self._grants.grants_between(dataset.owner, caller.department_id)

    def decide(
        self,
        caller: Caller,
        action: str,
        dataset: Dataset,
        candidates: Sequence[G],
        grant_id: str | None = None,
        purpose: str = "",
        request_id: str = "",
        details: dict[str, object] | None = None,
        audit: bool = True,
        guard: Callable[[Any], dict[str, Any]] | None = None,
    ) -> tuple[Decision, G | None]:
        """Whether `caller` may do `action` on `dataset`, and under which of `candidates` (None: on
        its own right, as the owner or because the data is open): the policies say which grants
        would allow it (one call), one is chosen (`grant_id` if given), and that decision is the one
        authorised and audited, naming the policies that made it."""
        resource = dataset_resource(dataset)
        grant: G | None = None
        if grant_id is not None or not self._access.engine.decide(caller, action, resource, self._access.now(), purpose).allowed:
            grant = choose(self._access.permitted(caller, action, resource, candidates, purpose), grant_id)
        extra = dict(details or {}) | ({"grant": grant.facts().grant_id} if grant is not None else {})
        decision = self._access.authorize(
            caller, action, resource, dataset.owner, request_id, extra, grant=grant, purpose=purpose, audit=audit, guard=guard
        )
        return decision, grant

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

    def get(self, caller: Caller, dataset_id: str, request_id: str = "") -> DatasetEntry:
        dataset = self.authorized(caller, "ViewDataset", dataset_id, request_id)
        return self.entry(caller, dataset, self.candidates(caller, dataset))

    def entry(self, caller: Caller, dataset: Dataset, candidates: Sequence[HasFacts]) -> DatasetEntry:
        """The dataset as `caller` is shown it: figures only to its owner and to readers of its whole
        rows (on their own right, or under an unrestricted grant); a view's reader sees the view's."""
        if dataset.owner == caller.department_id:
            return dataset.entry(figures=True)
        decision, grant = self.decide(caller, "ReadData", dataset, candidates, audit=False)
        return dataset.entry(figures=decision.allowed and (grant is None or not grant.facts().restricted))

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
        decision, _ = self.decide(caller, "ViewDataset", dataset, self.candidates(caller, dataset), audit=False)
        return dataset if decision.allowed else None

    def permitted(self, caller: Caller, action: str, dataset: Dataset, candidates: Sequence[G], purpose: str = "") -> list[G]:
        """The candidate grants under which the policies let `caller` do `action` on `dataset` (a listing's
        filter: one call, not audited)."""
        return self._access.permitted(caller, action, dataset_resource(dataset), candidates, purpose)

    def viewable(self, caller: Caller, dataset: Dataset, candidates: Sequence[HasFacts]) -> bool:
        """Whether the caller may see a dataset already read, its candidate grants already fetched
        (decided, not audited: no data goes out on this answer)."""
        return self.decide(caller, "ViewDataset", dataset, candidates, audit=False)[0].allowed

    def readable_under(self, caller: Caller, dataset: Dataset) -> tuple[bool, HasFacts | None]:
        """Whether `caller` may read `dataset`'s data, and the grant it would read under (None: its
        own right) — decided by the policies, not audited: used to shape what metadata shows."""
        decision, grant = self.decide(caller, "ReadData", dataset, self.candidates(caller, dataset), audit=False)
        return decision.allowed, grant

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
        if update.classification == "public":
            try:
                check_public(current.table_schema)
            except ValueError as refused:
                raise InvalidRequest(str(refused)) from None
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
        visible: list[DatasetEntry] = []
        next_cursor: str | None = None
        covering = CoveringGrants(self._grants.grants_to(caller.department_id) if self._grants else [])
        budget = _MAX_PAGES_READ * limit
        for dataset, resume_after in self._repository.scan_pages(query, page_size=limit, cursor=cursor):
            budget -= 1
            # Listing filters by the same policies as a get, so it never reveals what a get would hide.
            candidates = covering.of(dataset)
            if self.decide(caller, "ViewDataset", dataset, candidates, audit=False)[0].allowed:
                visible.append(self.entry(caller, dataset, candidates))
            if len(visible) == limit or budget == 0:
                next_cursor = resume_after
                break
        return DatasetPage(datasets=visible, next_cursor=next_cursor)

    def require(
        self,
        caller: Caller,
        action: str,
        dataset: Dataset,
        candidates: Sequence[G],
        grant_id: str | None = None,
        purpose: str = "",
        request_id: str = "",
        details: dict[str, object] | None = None,
        guard: Callable[[Any], dict[str, Any]] | None = None,
    ) -> G | None:
        """`decide()`, audited; the grant the caller acts under (None: its own right). Refused:
        "not found" unless the caller may see the dataset (a refusal must not reveal existence)."""
        decision, grant = self.decide(caller, action, dataset, candidates, grant_id, purpose, request_id, details, guard=guard)
        if decision.allowed:
            return grant
        if action == "CreateDataset":
            raise Forbidden("The caller may not create datasets")
        if action != "ViewDataset" and self.viewable(caller, dataset, candidates):
            raise Forbidden(f"The caller may not {action} on dataset {dataset.dataset_id}")
        raise DatasetNotFound(f"No dataset {dataset.dataset_id}")

    def require_own(
        self, caller: Caller, action: str, datasets: Sequence[Dataset], purpose: str = "", request_id: str = ""
    ) -> None:
        """`require()` of the caller's own department's `datasets`, in its own right: each decided and
        audited, in one write to its chain; Forbidden if any is refused."""
        if any(dataset.owner != caller.department_id for dataset in datasets):
            raise ValueError("require_own decides on the caller's own datasets only")
        if not datasets:
            return
        resources = [dataset_resource(dataset) for dataset in datasets]
        decisions = self._access.authorize_many(caller, action, resources, caller.department_id, request_id, purpose)
        refused = [d.dataset_id for d, decision in zip(datasets, decisions, strict=True) if not decision.allowed]
        if refused:
            raise Forbidden(f"The caller may not {action} on dataset {', '.join(refused)}")

    def _require(
        self, caller: Caller, action: str, dataset: Dataset, request_id: str, details: dict[str, object] | None = None
    ) -> None:
        self.require(caller, action, dataset, self.candidates(caller, dataset), request_id=request_id, details=details)
