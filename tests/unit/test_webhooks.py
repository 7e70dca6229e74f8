"""Webhook deliveries: signed so the receiver can verify them, retried when the receiver fails."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.analytics.destinations import UnsafeDestination, check_destination
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
    assert WebhookSender(backoff_seconds=0, allow_private=True).send(receiver, "s3cret", {"kind": "alert.raised", "value": 88.8})
    ((headers, body),) = Flaky.received
    expected = hmac.new(b"s3cret", headers["x-cityshare-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-cityshare-signature"] == f"sha256={expected}" and body == b'{"kind":"alert.raised","value":88.8}'


def test_a_failing_receiver_is_retried_then_given_up(receiver: str) -> None:
    Flaky.failures_left = 1
    assert WebhookSender(backoff_seconds=0, allow_private=True).send(receiver, "s3cret", {"n": 1})
    assert len(Flaky.received) == 2
    Flaky.received, Flaky.failures_left = [], 99
    assert not WebhookSender(backoff_seconds=0, allow_private=True).send(receiver, "s3cret", {"n": 2})
    assert len(Flaky.received) == ATTEMPTS


def test_an_unreachable_receiver_is_not_an_error() -> None:
    assert not WebhookSender(backoff_seconds=0, allow_private=True).send("http://127.0.0.1:9/hook", "s3cret", {"n": 3})


class Redirecting(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(302)
        self.send_header("Location", Redirecting.target)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return

    target = ""


def test_a_redirect_is_not_followed(receiver: str) -> None:
    """A receiver cannot send CityShare's POST (turned into a GET) somewhere else, such as its own network."""
    Redirecting.target = receiver
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        redirecting = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert not WebhookSender(backoff_seconds=0, allow_private=True).send(redirecting, "s3cret", {"n": 4})
        assert Flaky.received == []
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:9001/2018-06-01/runtime/invocation/next",  # the Lambda runtime API
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",  # a name: refused once resolved
        "http://8.8.8.8/hook",  # not https
    ],
)
def test_webhooks_go_to_public_https_addresses_only(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        check_destination(url, allow_private=False)
    check_destination(url, allow_private=True)  # the embedded stack's receivers listen on 127.0.0.1
    assert not WebhookSender(backoff_seconds=0).send(url, "s3cret", {"n": 5})


def test_a_public_address_is_a_destination() -> None:
    check_destination("https://8.8.8.8/hook", allow_private=False)
    check_destination("https://receiver.city.example/hook", allow_private=False, resolve=False)


def test_the_post_connects_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name resolves to a public address when checked, then to 127.0.0.1; the
    delivery still connects to the address it checked."""
    import functions.analytics.destinations as destinations
    import functions.analytics.webhooks as webhooks

    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1", "127.0.0.1"])

    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        return [(2, 1, 6, "", (next(answers), port))]

    connected: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], *_: Any, **__: Any) -> Any:
        connected.append(address)
        raise OSError("refused in the test")

    monkeypatch.setattr(destinations.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(webhooks.socket, "create_connection", connect)
    assert not WebhookSender(backoff_seconds=0)._post("https://receiver.city.example/hook", "s3cret", b"{}")
    assert connected == [("93.184.216.34", 443)]


def test_a_failed_delivery_logs_the_host_not_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Receivers often carry their secret in the URL: the logs get the host only."""
    import functions.analytics.webhooks as webhooks

    logged: list[str] = []
    monkeypatch.setattr(webhooks.logger, "warning", lambda message, extra: logged.append(f"{message} {extra}"))
    assert not WebhookSender(backoff_seconds=0, allow_private=True).send("http://127.0.0.1:9/hooks/T0SECRET", "s3cret", {})
    assert logged and all("127.0.0.1" in line and "T0SECRET" not in line for line in logged)
