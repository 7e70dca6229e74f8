"""Whether a failed AWS call may succeed if tried again: the one test every retry decision uses."""

from __future__ import annotations

from functions.core.errors import DepartmentNotReady

_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "InternalServiceErrorException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "TransactionConflictException",
        "TransactionInProgressException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_TRANSIENT_TYPES = frozenset(
    {
        "ConnectionError",
        "EndpointConnectionError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "TimeoutError",
        "ConnectionClosedError",
    }
)


def is_transient(error: BaseException) -> bool:
    """AWS throttling or faults, a network error, or a department whose key is still being made —
    looked for along the chain of causes, since boto3 wraps some (an upload's ClientError becomes an
    S3UploadFailedError that carries no response of its own)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DepartmentNotReady):
            return True
        response = getattr(current, "response", None) or {}
        if str((response.get("Error") or {}).get("Code", "")) in _TRANSIENT_CODES:
            return True
        if {cls.__name__ for cls in type(current).__mro__} & _TRANSIENT_TYPES:
            return True
        current = current.__cause__ or current.__context__
    return False


def error_code(error: BaseException) -> str:
    """The AWS error code of `error` ("" for anything else)."""
    response = getattr(error, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", ""))
