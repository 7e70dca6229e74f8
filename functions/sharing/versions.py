"""A dataset's versions as a caller may see them: discovering a dataset is not reading it, so a
version's figures follow what the policies let the caller read (the owner everything, a reader of
the whole dataset its figures, a grantee those of its view, anyone else none)."""

from __future__ import annotations

from collections.abc import Callable

from functions.catalog.models import Dataset
from functions.catalog.profiles import DatasetProfile
from functions.catalog.service import CatalogService
from functions.identity.models import Caller
from functions.ingest.models import DatasetVersion, PublishedVersion, VersionAccess, VersionPage
from functions.ingest.repository import IngestRepository
from functions.sharing.models import GrantTerms
from functions.sharing.repository import SharingRepository


def published_version(
    version: DatasetVersion, access: VersionAccess, terms: GrantTerms | None = None, rekeyed: list[str] | None = None
) -> PublishedVersion:
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
        altered = {*terms.masked_columns, *terms.generalised, *terms.linked_columns, *terms.decrypt_columns, *(rekeyed or [])}
        plain = [c for c in (terms.columns or version.profile.columns) if c in version.profile.columns and c not in altered]
        profile = DatasetProfile(rows=version.profile.rows, columns={c: version.profile.columns[c] for c in plain})
        shown = shown.model_copy(update={"rows": version.rows, "profile": profile})
    return shown


class VersionService:
    def __init__(self, catalog: CatalogService, versions: IngestRepository, grants: SharingRepository) -> None:
        self._catalog = catalog
        self._versions = versions
        self._grants = grants

    def list_versions(self, caller: Caller, dataset_id: str, request_id: str = "") -> VersionPage:
        dataset = self._catalog.authorized(caller, "ViewDataset", dataset_id, request_id, {"versions": "list"})
        shape = self._shaper(caller, dataset)
        return VersionPage(versions=[shape(version) for version in self._versions.list_versions(dataset_id)])

    def get_version(self, caller: Caller, dataset_id: str, version: int, request_id: str = "") -> PublishedVersion:
        dataset = self._catalog.authorized(caller, "ViewDataset", dataset_id, request_id, {"version": version})
        return self._shaper(caller, dataset)(self._versions.get_version(dataset_id, version))

    def _shaper(self, caller: Caller, dataset: Dataset) -> Callable[[DatasetVersion], PublishedVersion]:
        if dataset.owner == caller.department_id:
            return lambda version: published_version(version, "owner")
        candidates = self._grants.grants_between(dataset.owner, caller.department_id)
        decision, grant = self._catalog.decide(caller, "ReadData", dataset, candidates, audit=False)
        if not decision.allowed:
            return lambda version: published_version(version, "metadata")
        if grant is None or not grant.needs_view(dataset):
            return lambda version: published_version(version, "whole")
        rekeyed = grant.rekeyed(dataset)
        return lambda version: published_version(version, "grant", grant.terms, rekeyed)
