"""Faults injected at the botocore level, under every client the code makes (its own, moto's, the
department sessions'), so no call site can escape: each AWS call is numbered as it is made, and a
run can be told to fail call n in one of the ways AWS and Lambda really fail.

- `throttled`, `server_error`: the call is refused, nothing applied (what a caller sees once
  botocore's own retries are spent);
- `applied_then_lost`: the call is applied, then its answer is lost (a read timeout);
- `applied_twice`: the call is applied and sent again, as botocore's retry does after a lost
  answer; the caller gets the second answer (a conditional write's own condition refuses it).
  Calls that carry a ClientRequestToken are answered as AWS does, from the first;
- `stopped_after`: the call is applied, then the function stops dead (Lambda's timeout or an
  out-of-memory kill): FunctionStopped is a BaseException, so no `except Exception` runs.

`plan()` says which (call, fault) pairs a path is run with: every call site (a line of the code
that calls AWS) at its first call, with every fault where it writes (changes AWS state) and
`throttled` where it reads. A read that is refused fails the same way whatever the refusal; a read
applied twice, or whose answer is lost, changes nothing; and a stop after a read leaves the state a
stop after the write before it leaves.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError, ReadTimeoutError

FAULTS = ("throttled", "server_error", "applied_then_lost", "applied_twice", "stopped_after")
_FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions")
_THROTTLE_CODES = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "s3": "SlowDown",
    "sns": "Throttled",
    "sts": "Throttling",
}
_SERVER_CODES = {"s3": "InternalError", "dynamodb": "InternalServerError", "kms": "KMSInternalException"}


_READS = ("Get", "Head", "List", "Query", "Scan", "Describe", "BatchGet", "AssumeRole", "Decrypt", "Encrypt", "GenerateDataKey")


def writes(call: Call) -> bool:
    return not call.operation.startswith(_READS)


# Where code handles every refused call alike (any exception), a 5xx is a throttle by another name:
# such paths are run with REFUSED_ALIKE; ingest, which tells passing faults from lasting ones by
# their codes, with every fault.
REFUSED_ALIKE = tuple(fault for fault in FAULTS if fault != "server_error")


def plan(calls: list[Call], faults: tuple[str, ...] = FAULTS) -> list[tuple[int, str]]:
    """The (call index, fault) pairs to run a path with (see the module's docstring)."""
    first = {call: index for index, call in reversed(list(enumerate(calls)))}
    return [
        (index, fault)
        for fault in faults
        for index, call in enumerate(calls)
        if first[call] == index and (writes(call) or fault == "throttled")
    ]


class FunctionStopped(BaseException):
    """The function was stopped where it stood (Lambda timeout, out of memory): nothing else of it runs."""


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    site: str  # where in functions/ the call was made ("file.py:line in function")

    def __str__(self) -> str:
        return f"{self.service}.{self.operation} at {self.site}"


@dataclass
class FaultInjector:
    """Counts every AWS call made while active; `arm(n, fault)` makes call n fail so."""

    calls: list[Call] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)  # EventBridge entries that were put
    messages: list[dict[str, Any]] = field(default_factory=list)  # SNS messages that were published
    injected: Call | None = None
    _plan: tuple[int, str] | None = None
    _stop_pending: bool = False
    _thread: int = 0

    def arm(self, index: int, fault: str) -> None:
        assert fault in FAULTS, fault
        self._plan = (index, fault)
        self.injected = None

    def disarm(self) -> None:
        self._plan = None
        self._stop_pending = False

    def reset(self) -> None:
        self.disarm()
        self.calls.clear()
        self.published.clear()
        self.messages.clear()
        self.injected = None

    @contextmanager
    def active(self) -> Iterator[FaultInjector]:
        original = BaseClient._make_api_call
        injector = self
        self._thread = threading.get_ident()

        def intercepted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            return injector._call(original, client, operation, params)

        BaseClient._make_api_call = intercepted  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]

    def _call(self, original: Any, client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        on_main = threading.get_ident() == self._thread
        if self._stop_pending and on_main:
            self._stop_pending = False
            raise FunctionStopped(f"stopped after {self.injected}")
        call = Call(service, operation, _site())
        index = len(self.calls)
        self.calls.append(call)
        fault = self._plan[1] if self._plan is not None and self._plan[0] == index else None
        if fault is None:
            return self._effect(service, operation, params, original(client, operation, params))
        self.injected = call
        if fault == "throttled":
            raise _error(service, operation, _THROTTLE_CODES.get(service, "ThrottlingException"), 400)
        if fault == "server_error":
            raise _error(service, operation, _SERVER_CODES.get(service, "InternalFailure"), 500)
        body = params.get("Body")
        start = body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None
        first = self._effect(service, operation, params, original(client, operation, params))
        if fault == "applied_then_lost":
            raise ReadTimeoutError(endpoint_url=f"https://{service}.eu-west-1.amazonaws.com/")
        if fault == "applied_twice":
            if "ClientRequestToken" in params or "ClientToken" in params:
                return first  # AWS answers a repeated idempotency token with the first outcome
            if start is not None:
                body.seek(start)  # botocore rewinds a body before it sends it again
            return self._effect(service, operation, params, original(client, operation, params))
        # stopped_after: a call on a worker thread (s3transfer's) stops the function at its next call
        if on_main:
            raise FunctionStopped(f"stopped after {call}")
        self._stop_pending = True
        return first

    def _effect(self, service: str, operation: str, params: dict[str, Any], result: Any) -> Any:
        if service == "events" and operation == "PutEvents" and not result.get("FailedEntryCount"):
            self.published.extend(params["Entries"])
        if service == "sns" and operation == "Publish":
            self.messages.append(params)
        return result

    def sites(self) -> set[tuple[str, str, str]]:
        return {(c.service, c.operation, c.site) for c in self.calls}


def _error(service: str, operation: str, code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"injected: {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if service == "dynamodb" and operation == "TransactWriteItems" and status == 400:
        response["Error"]["Code"] = "ThrottlingException"
    return ClientError(response, operation)


def _site() -> str:
    """The innermost frame of CityShare's functions that led to the call."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_FUNCTIONS) and not filename.endswith(("core/aws.py", "core/dynamo.py")):
            return f"{filename[len(_FUNCTIONS) - len('functions') :]}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "(an s3transfer worker thread)"
