"""Which grants still let their grantees read, as the policies decide it now: what the view sweep
keeps views for. The grantee acts as the principal the grant names, or as its department."""

from __future__ import annotations

from functions.catalog.repository import CatalogRepository
from functions.catalog.service import CatalogService
from functions.policy.actors import Actors
from functions.sharing.repository import SharingRepository


class GrantLiveness:
    def __init__(self, policies: CatalogService, actors: Actors, grants: SharingRepository, catalog: CatalogRepository) -> None:
        self._policies = policies
        self._actors = actors
        self._grants = grants
        self._catalog = catalog

    def live(self, owner: str, grantee: str) -> set[str]:
        alive: set[str] = set()
        for grant in self._grants.grants_between(owner, grantee):
            dataset = self._catalog.get(grant.dataset_id) if grant.dataset_id else None
            if dataset is None:
                continue  # tag grants share whole datasets: no view of theirs to keep
            actor = (
                self._actors.of(grantee, grant.grantee_principal) if grant.grantee_principal else self._actors.department(grantee)
            )
            if self._policies.permitted(actor, "ReadData", dataset, [grant], "view-sweep"):
                alive.add(grant.grant_id)
        return alive
