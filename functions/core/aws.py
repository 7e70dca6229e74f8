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
            if _session is None:
                _session = new_session()
            _clients[service] = client_of(_session, service)
        return _clients[service]


_loader: Any = None


def new_session(**credentials: str) -> Any:
    """A boto3 session sharing the process's botocore data loader: service models and endpoint rules
    are parsed from their JSON once per process, not once per session (a function acting for a new
    department opens a session for it; each used to cost tens of milliseconds of JSON). Imported
    here so that modules which never call AWS do not pay for boto3."""
    import boto3
    import botocore.session

    global _loader
    core = botocore.session.get_session()
    if _loader is None:
        _loader = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core, **credentials)


def client_of(session: Any, service: str) -> Any:
    """A client of `session` with CityShare's settings (retries, timeouts, SigV4 presigning)."""
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=10,
        signature_version="s3v4" if service == "s3" else None,
    )
    return session.client(service, config=config)


def reset_clients() -> None:
    """Forget the clients (tests that change the AWS environment call this)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None


class LazyClient:
    """A class attribute giving each instance the shared client of `service`, unless one was
    injected as `self._<name>` (tests pass moto clients that way)."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._attribute = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"_{name}"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        found = getattr(instance, self._attribute, None)
        if found is None:
            found = client(self._service)
            setattr(instance, self._attribute, found)
        return found
