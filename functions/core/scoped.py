"""Acting for one department's data. The functions' own roles cannot read or write any department's
objects, nor use its KMS key: for that they assume the platform's data role with a session tag
naming the department (`cityshare:department`), and the data role's policy lets a session reach
only objects under that department's prefixes (functions.core.layout) and only KMS keys tagged
with that department. Which department a request acts for is decided once, after the policies
allowed it; a bug that reaches for another department's data gets AccessDenied from AWS.

Sessions are cached per department until shortly before they expire. With no data role configured
(unit and moto tests), the process's own clients are used.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from functions.core import aws

DEPARTMENT_TAG = "cityshare:department"
_SESSION_SECONDS = 3600
# Renewed while it still outlives any presigned URL made with it (uploads: 15 minutes).
_RENEW_BEFORE_SECONDS = 1200


class DepartmentScopes:
    sts = aws.LazyClient("sts")

    def __init__(self, role_arn: str, function: str = "cityshare", sts: Any = None) -> None:
        self._role_arn = role_arn
        self._function = function
        self._sts = sts
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[Any, float]] = {}
        self._clients: dict[tuple[str, str], Any] = {}

    def s3(self, department: str) -> Any:
        return self._client(department, "s3")

    def kms(self, department: str) -> Any:
        return self._client(department, "kms")

    def _client(self, department: str, service: str) -> Any:
        if not self._role_arn:
            return aws.client(service)
        with self._lock:
            session, expires = self._sessions.get(department, (None, 0.0))
            if session is None or time.time() > expires - _RENEW_BEFORE_SECONDS:
                session, expires = self._assume(department), time.time() + _SESSION_SECONDS
                self._sessions[department] = (session, expires)
                self._clients = {k: v for k, v in self._clients.items() if k[0] != department}
            if (department, service) not in self._clients:
                self._clients[(department, service)] = aws.client_of(session, service)
            return self._clients[(department, service)]

    def _assume(self, department: str) -> Any:
        credentials = self.sts.assume_role(
            RoleArn=self._role_arn,
            RoleSessionName=f"{self._function}-{department}"[:64],
            DurationSeconds=_SESSION_SECONDS,
            Tags=[{"Key": DEPARTMENT_TAG, "Value": department}],
        )["Credentials"]
        return aws.new_session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )


def sse_kms(key_arn: str) -> dict[str, str]:
    """S3 arguments that encrypt an object with a department's KMS key."""
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn}
