"""Webhook deliveries, signed so the receiver can tell they come from CityShare and were not altered
or replayed: `X-CityShare-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
`X-CityShare-Timestamp` (reject deliveries older than a few minutes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from typing import Any

from functions.core.observability import logger

TIMEOUT_SECONDS = 5
ATTEMPTS = 3  # a receiver that is briefly down still gets it; the inbox keeps every notification anyway
BACKOFF_SECONDS = 0.5


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, backoff_seconds: float = BACKOFF_SECONDS) -> None:
        self._backoff = backoff_seconds

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
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                return bool(200 <= response.status < 300)
        except OSError as error:  # HTTPError (a 4xx/5xx answer) included
            logger.warning("webhook delivery failed", extra={"url": url[:200], "error": str(error)[:200]})
            return False
