"""Typed domain errors. Each carries a stable machine-readable code and its HTTP status; the API maps
them to application/problem+json in one place (functions/handlers/http.py)."""

from __future__ import annotations

from typing import Any

# The Delta Sharing protocol's error codes by HTTP status: its errors are `{"errorCode", "message"}`,
# and its clients retry any 5xx, so whatever the caller can fix must be a 4xx.
_DELTA_SHARING_ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "RESOURCE_EXHAUSTED",
}


def delta_sharing_error_code(status: int) -> str:
    if status in _DELTA_SHARING_ERROR_CODES:
        return _DELTA_SHARING_ERROR_CODES[status]
    return "INTERNAL_ERROR" if status >= 500 else "INVALID_PARAMETER_VALUE"


class CityShareError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class InvalidRequest(CityShareError):
    status, code, title = 400, "invalid_request", "The request is not valid"


class Unauthenticated(CityShareError):
    """The caller's signed request did not verify. `reason` is audited, never returned."""

    status, code, title = 401, "unauthenticated", "The caller could not be authenticated"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason


class Forbidden(CityShareError):
    status, code, title = 403, "forbidden", "The caller may not do this"


class GrantExpired(Forbidden):
    code, title = "grant_expired", "The grant has expired"


class GrantRevoked(Forbidden):
    code, title = "grant_revoked", "The grant was revoked"


class NotFound(CityShareError):
    status, code, title = 404, "not_found", "No such resource"


class DatasetNotFound(NotFound):
    # Also what a caller gets for a dataset it may not see: the answer must not reveal existence.
    code, title = "dataset_not_found", "No such dataset"


class DepartmentNotFound(NotFound):
    code, title = "department_not_found", "No such department"


class Conflict(CityShareError):
    status, code, title = 409, "conflict", "The resource changed or already exists"


class AlreadyExists(Conflict):
    code, title = "already_exists", "The resource already exists"


class DepartmentNotReady(Conflict):
    """The department was registered moments ago and its resources (its KMS key) are being made."""

    code, title = "department_not_ready", "The department is being set up"

    def __init__(self, department_id: str) -> None:
        super().__init__(f"Department {department_id} is being set up (its KMS key is made within a minute); try again shortly")
        self.department_id = department_id


class PreconditionFailed(Exception):
    """A guarded write was not made: what it was decided on changed meanwhile (e.g. a grant was
    revoked while a read under it was decided). Never an answer: the caller decides again."""


class Busy(CityShareError):
    """A transient refusal by AWS (throttling, contention) that outlasted the retries: safe to retry."""

    status, code, title = 503, "busy", "The platform is busy: try again shortly"


class PayloadTooLarge(CityShareError):
    status, code, title = 413, "payload_too_large", "The request body is too large"


class ViewTooLarge(CityShareError):
    """A private view whose groups are more than the privacy function can be handed in one call."""

    status, code, title = 422, "view_too_large", "The grant's view has too many groups to release"


class PrivacyBudgetExhausted(Conflict):
    """A differentially private release would spend more than the grantee may spend on the dataset."""

    code, title = "privacy_budget_exhausted", "The privacy budget for this dataset is spent"


class QueryFailed(RuntimeError):
    """A query over data failed (out of memory, a value it cannot convert): the data's or the
    definition's doing, the same on every retry. Over its time limit it is a TimeoutError. Its
    message may quote a value of the data (for the definer, who may read it); `kind` says what
    failed without one, for logs."""

    def __init__(self, message: str, kind: str = "QueryFailed") -> None:
        super().__init__(message)
        self.kind = kind
