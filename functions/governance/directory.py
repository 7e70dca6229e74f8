"""The platform admin's operations on the directory, each behind one `authorize()` call."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from pydantic import ConfigDict, Field

from functions.core.clock import utc_now
from functions.core.errors import AlreadyExists, DepartmentNotFound, Forbidden, InvalidRequest
from functions.core.events import DepartmentRegistered, EventPublisher
from functions.core.model import Model
from functions.core.observability import logger
from functions.identity.directory import DirectoryRepository, KeyHeldElsewhere
from functions.identity.keys import validate_public_jwk
from functions.identity.models import (
    PLATFORM_DEPARTMENT,
    Caller,
    Department,
    DepartmentId,
    Principal,
    PublicKey,
    Role,
    Status,
)
from functions.policy.access import AccessControl
from functions.policy.engine import Resource

_DIRECTORY = Resource("Directory", "directory")


class DepartmentCreate(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    department_id: DepartmentId
    name: str = Field(min_length=1, max_length=200)


class DepartmentStatusChange(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    status: Status


class PrincipalStatusChange(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    status: Status


class PrincipalPut(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    display_name: str = Field(default="", max_length=200)
    roles: list[Role] = Field(min_length=1, max_length=3)


class KeyAdd(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    jwk: dict[str, Any]


class DepartmentDetail(Model):
    department: Department
    principals: list[Principal]
    keys: list[PublicKey]


class Identity(Model):
    """What CityShare knows of the caller: the directory's view, not the token's."""

    department_id: str
    principal_id: str
    roles: list[str]
    department_status: str


def public_key(department_id: str, principal_id: str, submitted_jwk: dict[str, Any]) -> PublicKey:
    """A directory key record from a submitted JWK (validated: public, ES256 or RS256)."""
    kid, alg, jwk = validate_public_jwk(submitted_jwk)
    return PublicKey(department_id=department_id, principal_id=principal_id, kid=kid, alg=alg, jwk=jwk, created_at=utc_now())


class DirectoryService:
    def __init__(self, directory: DirectoryRepository, access: AccessControl, events: EventPublisher | None = None) -> None:
        self._directory = directory
        self._access = access
        self._events = events

    def whoami(self, caller: Caller, request_id: str = "") -> Identity:
        from functions.policy.engine import principal_key

        resource = Resource("Principal", principal_key(caller))
        if not self._access.authorize(caller, "ViewSelf", resource, caller.department_id, request_id).allowed:
            raise Forbidden("The caller may not view itself")
        return Identity(
            department_id=caller.department_id,
            principal_id=caller.principal_id,
            roles=list(caller.roles),
            department_status=caller.department_status,
        )

    def register_department(self, caller: Caller, request: DepartmentCreate, request_id: str = "") -> Department:
        self._require(caller, "ManageDirectory", request_id, {"register": request.department_id})
        department = Department(department_id=request.department_id, name=request.name, created_at=utc_now())
        self._directory.create_department(department)
        if self._events is not None:
            try:  # the provisioner makes its key now; should the bus be unreachable, its sweep does shortly
                self._events.publish(
                    DepartmentRegistered(department_id=department.department_id, registered_at=department.created_at)
                )
            except Exception:
                logger.warning("department left to the provisioner's sweep", extra={"department": department.department_id})
        return department

    def list_departments(self, caller: Caller, request_id: str = "") -> list[Department]:
        self._require(caller, "ViewDirectory", request_id, {})
        return self._directory.list_departments()

    def describe_department(self, caller: Caller, department_id: str, request_id: str = "") -> DepartmentDetail:
        self._require(caller, "ViewDirectory", request_id, {"department": department_id})
        return DepartmentDetail(
            department=self._existing(department_id),
            principals=self._directory.list_principals(department_id),
            keys=self._directory.list_keys(department_id),
        )

    def set_department_status(
        self, caller: Caller, department_id: str, change: DepartmentStatusChange, request_id: str = ""
    ) -> Department:
        self._require(caller, "ManageDirectory", request_id, {"department": department_id, "status": change.status})
        if department_id == PLATFORM_DEPARTMENT:
            raise InvalidRequest("The platform department cannot be suspended")
        return self._directory.set_department_status(department_id, change.status)

    def put_principal(
        self, caller: Caller, department_id: str, principal_id: str, request: PrincipalPut, request_id: str = ""
    ) -> Principal:
        self._require(
            caller, "ManageDirectory", request_id, {"principal": f"{department_id}/{principal_id}", "roles": request.roles}
        )
        self._existing(department_id)
        if "admin" in request.roles and department_id != PLATFORM_DEPARTMENT:
            raise InvalidRequest("Only principals of the platform department can be admins")
        existing = self._directory.get_principal(department_id, principal_id)
        principal = Principal(
            department_id=department_id,
            principal_id=principal_id,
            display_name=request.display_name,
            roles=sorted(set(request.roles)),
            status=existing.status if existing else "active",  # changing roles never reinstates
        )
        self._directory.put_principal(principal)
        return principal

    def set_principal_status(
        self, caller: Caller, department_id: str, principal_id: str, change: PrincipalStatusChange, request_id: str = ""
    ) -> Principal:
        """Suspend or reinstate one principal: suspended, its requests are refused and nothing it
        defined (rules, derived datasets, subscriptions) acts any more, until it is reinstated."""
        details: dict[str, object] = {"principal": f"{department_id}/{principal_id}", "status": change.status}
        self._require(caller, "ManageDirectory", request_id, details)
        if (department_id, principal_id) == (caller.department_id, caller.principal_id):
            raise InvalidRequest("A platform admin cannot suspend itself (ask another admin)")
        return self._directory.set_principal_status(department_id, principal_id, change.status)

    def add_key(self, caller: Caller, department_id: str, principal_id: str, request: KeyAdd, request_id: str = "") -> PublicKey:
        self._require(caller, "ManageDirectory", request_id, {"key_for": f"{department_id}/{principal_id}"})
        self._existing(department_id)
        if principal_id not in {p.principal_id for p in self._directory.list_principals(department_id)}:
            raise InvalidRequest(f"Register principal {principal_id} before adding its keys")
        key = public_key(department_id, principal_id, request.jwk)
        self._directory.add_key(key)
        return key

    def retire_key(self, caller: Caller, department_id: str, kid: str, request_id: str = "") -> None:
        self._require(caller, "ManageDirectory", request_id, {"retire_key": f"{department_id}/{kid}"})
        self._directory.retire_key(department_id, kid)

    def _require(self, caller: Caller, action: str, request_id: str, details: dict[str, object]) -> None:
        if not self._access.authorize(caller, action, _DIRECTORY, PLATFORM_DEPARTMENT, request_id, details).allowed:
            raise Forbidden("Only the platform admin manages the directory")

    def _existing(self, department_id: str) -> Department:
        department = self._directory.get_department(department_id)
        if department is None:
            raise DepartmentNotFound(f"No department {department_id}")
        return department


def bootstrap_platform(directory: DirectoryRepository, admin_jwk: dict[str, Any], principal_id: str = "admin") -> PublicKey:
    """Create the platform department, its admin principal and the admin's key (idempotent).

    The one write that does not go through the API: there is nobody to sign it yet.
    """
    with suppress(AlreadyExists):
        directory.create_department(
            Department(department_id=PLATFORM_DEPARTMENT, name="City platform team", created_at=utc_now())
        )
    directory.put_principal(
        Principal(department_id=PLATFORM_DEPARTMENT, principal_id=principal_id, display_name="Platform admin", roles=["admin"])
    )
    key = public_key(PLATFORM_DEPARTMENT, principal_id, admin_jwk)
    try:
        directory.add_key(key)
    except KeyHeldElsewhere:
        raise  # the admin's key is another principal's: not registered, said so
    except AlreadyExists:
        pass  # registered by an earlier bootstrap
    return key
