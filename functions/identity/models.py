"""The directory's records. Roles live here and only here; a token never carries them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from functions.core.model import Model

KeyAlgorithm = Literal["ES256", "RS256"]

DepartmentId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
PrincipalId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
Role = Literal["member", "steward", "admin"]
Status = Literal["active", "suspended"]

# The department that holds the platform team's principals; created at bootstrap.
PLATFORM_DEPARTMENT = "platform"


class Department(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    department_id: DepartmentId
    name: str = Field(min_length=1, max_length=200)
    status: Status = "active"
    created_at: str
    # Set by the provisioner once the department's resources exist (its KMS key; its API key for
    # the per-department usage plan, in AWS): until then it can publish nothing.
    data_key: str | None = Field(default=None, description="ARN of the department's own KMS key")
    # The API Gateway key the authorizer names for throttling: read from the directory, never in an
    # answer or a dump (record_resources writes it on its own).
    usage_key: str | None = Field(default=None, exclude=True, repr=False)


class Principal(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    department_id: DepartmentId
    principal_id: PrincipalId
    display_name: str = Field(default="", max_length=200)
    roles: list[Role] = Field(min_length=1)
    status: Status = "active"


class PublicKey(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    department_id: DepartmentId
    principal_id: PrincipalId
    kid: KeyId
    alg: KeyAlgorithm
    jwk: dict[str, Any]
    status: Literal["active", "retired"] = "active"
    created_at: str


class Caller(Model):
    """Who acts, as the policies see it: the verified identity of a request (as the authorizer hands
    it to the API: its token's id and body hash too), or the principal on whose behalf background
    work acts (a rule, a derived dataset, a subscription: functions.policy.actors), read from the
    directory each time."""

    model_config = ConfigDict(frozen=True)

    department_id: str
    principal_id: str
    roles: tuple[str, ...]
    department_status: str = "active"
    principal_status: str = "active"
    # Keys the principal may sign with (a request was signed with one; background work counts them).
    active_keys: int = 1
    jti: str = ""
    body_sha256: str = ""
    # The department's API key, which the authorizer names so API Gateway throttles each department
    # on its own; never passed on to the API.
    usage_key: str | None = Field(default=None, repr=False)

    @property
    def is_steward(self) -> bool:
        return "steward" in self.roles

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles and self.department_id == PLATFORM_DEPARTMENT
