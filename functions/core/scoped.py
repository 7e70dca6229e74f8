"""Acting for one department's data. The functions' own roles cannot read or write any department's
objects, nor use its KMS key: for that a session of the platform's data role is needed, tagged with
the department (`cityshare:department`), and the data role's policy lets a session reach only
objects under that department's prefixes (functions.core.layout) and only KMS keys tagged with that
department. A bug that reaches for another department's data gets AccessDenied from AWS.

Two ways to get such a session:

- **Background work** (ingest, triggers): the function's role assumes the data role itself, for the
  department its work belongs to (ingest: the upload's object key, which S3 attests).
- **Requests** (the api, analytics and Delta Sharing functions, whose roles may not assume the data
  role): while a request is served (`serving`), sessions come from the session broker (functions/sharing/sessions.py),
  which vends one only for the department whose verified request it is, or, narrowed to one dataset's
  objects, for a dataset's owner when the policies let the caller read it. Which department a
  request's session acts for is then chosen by the code that verified the caller, not by the function.

Sessions are cached until shortly before they expire: background ones per department, requests'
per (kind of caller, caller's department, department, dataset). With no data role configured (unit and moto
tests), the process's own clients are used, after the broker has decided.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from functions.core import aws
from functions.core.errors import Forbidden

DEPARTMENT_TAG = "cityshare:department"
SESSION_SECONDS = 3600
# Renewed while it still outlives any presigned URL made with it (uploads: 15 minutes; reads: 5).
_RENEW_BEFORE_SECONDS = 1200


class SessionRefused(Forbidden):
    code, title = "session_refused", "No data session for that department"


@dataclass(frozen=True)
class Serving:
    """The verified request a function is serving: its caller's department and what the broker checks
    it against: a signed request's token id, which the authorizer recorded (functions/identity/nonces.py),
    or (kind "recipient") a Delta Sharing recipient's bearer token, whose hash the recipient's record holds."""

    department: str
    token_id: str = field(repr=False)
    kind: Literal["signed", "recipient"] = "signed"


Credentials = dict[str, str]
# (request, department, dataset or None for the caller's own) -> credentials (None: no data role here)
Broker = Callable[[Serving, str, str | None], Credentials | None]

_serving: ContextVar[Serving | None] = ContextVar("cityshare_serving", default=None)


@contextlib.contextmanager
def serving(department: str, token_id: str, kind: Literal["signed", "recipient"] = "signed") -> Iterator[None]:
    """Within this block, data sessions are the broker's, for the request of `department` whose token
    is `token_id` (a context variable: threads started inside must carry the context, `copy_context`)."""
    token = _serving.set(Serving(department, token_id, kind))
    try:
        yield
    finally:
        _serving.reset(token)


class DepartmentScopes:
    sts = aws.LazyClient("sts")

    def __init__(self, role_arn: str, function: str = "cityshare", sts: Any = None, broker: Broker | None = None) -> None:
        self._role_arn = role_arn
        self._function = function
        self._sts = sts
        self._broker = broker
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str | None, str, str | None], tuple[Any, float]] = {}
        self._clients: dict[tuple[str | None, str, str | None, str], Any] = {}

    def s3(self, department: str, dataset: str | None = None) -> Any:
        """A client acting for `department`; while serving another department's request, only for
        `dataset`'s objects (which the broker checks the caller may read)."""
        return self._client(department, "s3", dataset)

    def kms(self, department: str, dataset: str | None = None) -> Any:
        return self._client(department, "kms", dataset)

    def credentials(
        self, department: str, policy: str | None = None, name: str | None = None, seconds: int = SESSION_SECONDS
    ) -> Credentials | None:
        """A fresh data-role session for `department`, limited further by `policy`, named `name` in
        CloudTrail (None: no data role here)."""
        if not self._role_arn:
            return None
        extra = {"Policy": policy} if policy else {}
        found = self.sts.assume_role(
            RoleArn=self._role_arn,
            RoleSessionName=(name or f"{self._function}-{department}")[:64],
            DurationSeconds=seconds,
            Tags=[{"Key": DEPARTMENT_TAG, "Value": department}],
            **extra,
        )["Credentials"]
        credentials = {k: str(found[k]) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
        return credentials | {"Expires": str(int(time.time()) + seconds)}

    def _client(self, department: str, service: str, dataset: str | None) -> Any:
        request = _serving.get() if self._broker is not None else None
        if request is not None and department == request.department:
            dataset = None  # its own department: the whole of it
        elif request is not None and dataset is None:
            raise SessionRefused(f"A request of {request.department} acts for {department} only for a dataset it reads")
        elif request is None:
            dataset = None
        # Kept per department, not per principal: AWS's bound is between departments (a principal's own
        # grants are the function's decision), and a session costs ~0.1 s to make.
        scope = (f"{request.kind}:{request.department}" if request else None, department, dataset)
        with self._lock:
            session, renew_at = self._sessions.get(scope, (None, 0.0))
            if session is None or time.time() > renew_at:
                if self._broker is not None and request is not None:
                    credentials = self._broker(request, department, dataset)
                else:
                    credentials = self.credentials(department)
                session = (
                    aws.new_session(
                        aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials["SessionToken"],
                    )
                    if credentials
                    else False
                )
                self._sessions[scope] = (session, _renewal(credentials))
                self._clients = {k: v for k, v in self._clients.items() if k[:3] != scope}
            if (*scope, service) not in self._clients:
                self._clients[(*scope, service)] = aws.client_of(session, service) if session else aws.client(service)
            return self._clients[(*scope, service)]


def _renewal(credentials: Credentials | None) -> float:
    """When to ask for a new session: while this one still outlives what is made with it (an hour's
    session 20 minutes before its end; a short one, vended for another department's dataset, half way)."""
    now = time.time()
    expires = float((credentials or {}).get("Expires", now + SESSION_SECONDS))
    return expires - min(_RENEW_BEFORE_SECONDS, (expires - now) / 2)


def sse_kms(key_arn: str) -> dict[str, str]:
    """S3 arguments that encrypt an object with a department's KMS key."""
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn}
