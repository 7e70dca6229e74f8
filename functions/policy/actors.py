"""Who background work acts as. A rule, a derived dataset or a subscription acts for the principal
that defined it, as the directory holds that principal *now*: the same policies then decide for it
as for a request — a suspended department or principal, or one whose every key is retired, is
refused everywhere, not only at the API's door."""

from __future__ import annotations

from functions.identity.directory import DirectoryRepository
from functions.identity.models import Caller


class Actors:
    def __init__(self, directory: DirectoryRepository) -> None:
        self._directory = directory

    def of(self, department_id: str, principal_id: str) -> Caller:
        """The principal as the policies see it; one that no longer exists has no key (refused)."""
        found = self._directory.member(department_id, principal_id)
        return Caller(
            department_id=department_id,
            principal_id=principal_id,
            roles=tuple(found.principal.roles) if found.principal else (),
            department_status=found.department.status if found.department else "suspended",
            principal_status=found.principal.status if found.principal else "suspended",
            active_keys=1 if found.key is not None else 0,
        )

    def department(self, department_id: str) -> Caller:
        """The department itself, for what is given to a whole department (a grant with no principal):
        a member with no roles beyond, as active as the department."""
        found = self._directory.get_department(department_id)
        return Caller(
            department_id=department_id,
            principal_id="*",
            roles=("member",),
            department_status=found.status if found else "suspended",
        )
