"""Webhook deliveries, signed so the receiver can tell they come from CityShare and were not altered
or replayed: `X-CityShare-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
`X-CityShare-Timestamp` (reject deliveries older than a few minutes).

Any member names the URL, and the function that posts runs inside CityShare: deliveries go only to
public addresses (checked when subscribing and again before each post, after DNS, and the post
connects to the address that was checked, so DNS cannot answer differently in between) and follow no
redirect, so a receiver cannot turn them towards the function's own network (the Lambda runtime
API on 127.0.0.1, link-local metadata, a private range). The embedded stack, whose receivers listen
on 127.0.0.1, allows private addresses with plain HTTP."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from functions.analytics.destinations import UnsafeDestination, check_destination
from functions.core.observability import logger

TIMEOUT_SECONDS = 5
ATTEMPTS = 3  # a receiver that is briefly down still gets it; the inbox keeps every notification anyway
BACKOFF_SECONDS = 0.5


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None  # a 3xx is an answer, not a new destination: the delivery fails


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to `address`, the one that was checked, with the URL's host name for SNI and the certificate."""

    def __init__(self, host: str, address: str, **options: Any) -> None:
        super().__init__(host, **options)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, address: str) -> None:
        super().__init__(context=ssl.create_default_context())
        self._address = address

    def https_open(self, request: urllib.request.Request) -> Any:
        def connection(host: str, **options: Any) -> http.client.HTTPSConnection:
            return _PinnedHTTPSConnection(host, self._address, **options)

        return self.do_open(connection, request, context=self._context)  # type: ignore[attr-defined]


def _host(url: str) -> str:
    # Never the whole URL in the logs: receivers often carry their secret in its path or query.
    return (urlsplit(url).hostname or "")[:200]


class WebhookSender:
    def __init__(self, backoff_seconds: float = BACKOFF_SECONDS, allow_private: bool = False) -> None:
        self._backoff = backoff_seconds
        self._allow_private = allow_private

    def send(self, url: str, secret: str, payload: dict[str, Any]) -> bool:
        """POST the payload, up to ATTEMPTS times (each signed afresh); False if the receiver never took it."""
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
            if self._post(url, secret, body):
                return True
        return False

    def _post(self, url: str, secret: str, body: bytes) -> bool:
        try:
            addresses = check_destination(url, self._allow_private)
        except UnsafeDestination as refused:
            logger.warning("webhook destination refused", extra={"host": _host(url), "error": str(refused)})
            return False
        timestamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked when the subscription was made
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "CityShare-Webhook/1",
                "X-CityShare-Timestamp": timestamp,
                "X-CityShare-Signature": signature(secret, timestamp, body),
            },
        )
        try:
            handlers: list[Any] = [_NoRedirect()] + ([_PinnedHTTPSHandler(addresses[0])] if addresses else [])
            with urllib.request.build_opener(*handlers).open(request, timeout=TIMEOUT_SECONDS) as response:
                return bool(200 <= response.status < 300)
        except OSError as error:  # HTTPError (a 4xx/5xx answer) included
            logger.warning("webhook delivery failed", extra={"host": _host(url), "error": str(error)[:200]})
            return False
