"""Webhook deliveries: signed so the receiver can verify them, retried when the receiver fails."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.analytics.webhooks import ATTEMPTS, WebhookSender


class Flaky(BaseHTTPRequestHandler):
    failures_left = 0
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Flaky.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status = 503 if Flaky.failures_left > 0 else 204
        Flaky.failures_left -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    Flaky.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_delivery_is_signed_over_timestamp_and_body(receiver: str) -> None:
    Flaky.failures_left = 0
    assert WebhookSender(backoff_seconds=0).send(receiver, "s3cret", {"kind": "alert.raised", "value": 88.8})
    ((headers, body),) = Flaky.received
    expected = hmac.new(b"s3cret", headers["x-cityshare-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-cityshare-signature"] == f"sha256={expected}" and body == b'{"kind":"alert.raised","value":88.8}'


def test_a_failing_receiver_is_retried_then_given_up(receiver: str) -> None:
    Flaky.failures_left = 1
    assert WebhookSender(backoff_seconds=0).send(receiver, "s3cret", {"n": 1})
    assert len(Flaky.received) == 2
    Flaky.received, Flaky.failures_left = [], 99
    assert not WebhookSender(backoff_seconds=0).send(receiver, "s3cret", {"n": 2})
    assert len(Flaky.received) == ATTEMPTS


def test_an_unreachable_receiver_is_not_an_error() -> None:
    assert not WebhookSender(backoff_seconds=0).send("http://127.0.0.1:9/hook", "s3cret", {"n": 3})
