"""The one place that creates AWS clients: lazily, from one session, shared by the whole process.

Endpoints come from the standard AWS environment (AWS_ENDPOINT_URL points them at the local moto
server in the embedded stack), so no code path knows whether it runs locally or in AWS.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_session: Any = None


def client(service: str) -> Any:
    """A shared boto3 client for `service` (botocore clients are thread-safe; sessions are not)."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            global _session
            import boto3  # imported here so modules that never call AWS do not pay for it
            from botocore.config import Config

            if _session is None:
                _session = boto3.session.Session()
            config = Config(
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=2,
                read_timeout=10,
                signature_version="s3v4" if service == "s3" else None,
            )
            _clients[service] = _session.client(service, config=config)
        return _clients[service]


def reset_clients() -> None:
    """Forget the clients (tests that change the AWS environment call this)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
