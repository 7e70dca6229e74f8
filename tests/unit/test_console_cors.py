"""In AWS the console is served from CloudFront, another origin than the API: the HTTP functions let
that origin, and no other, read their answers (API Gateway answers the preflights; tests/infra checks those)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from functions.handlers import http
from functions.handlers.http import build_resolver, make_handler

CONSOLE = "https://d111111abcdef8.cloudfront.net"


@dataclass
class Context:
    function_name: str = "cityshare-test-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:cityshare-test-api"
    aws_request_id: str = "request-1"


def event(origin: str | None) -> dict[str, Any]:
    headers = {"Origin": origin} if origin else {}
    # No authorizer context: the function answers 401 itself, as it would if invoked around the authorizer.
    return {"httpMethod": "GET", "path": "/datasets", "headers": headers, "requestContext": {"requestId": "r-1"}, "body": None}


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(http, "get_settings", lambda: SimpleNamespace(console_origin=CONSOLE, max_body_bytes=1024))
    return make_handler(build_resolver())


def test_the_consoles_origin_may_read_the_answer(handler: Any) -> None:
    response = handler(event(CONSOLE), Context())
    assert response["statusCode"] == 401
    assert response["headers"]["Access-Control-Allow-Origin"] == CONSOLE
    assert response["headers"]["Vary"] == "Origin"
    assert response["headers"]["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("origin", [None, "https://evil.example", CONSOLE + ".evil.example", "null", CONSOLE.upper()])
def test_no_other_origin_is_named(handler: Any, origin: str | None) -> None:
    response = handler(event(origin), Context())
    assert response["statusCode"] == 401
    assert "Access-Control-Allow-Origin" not in response["headers"]


def test_without_a_console_origin_nothing_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "get_settings", lambda: SimpleNamespace(console_origin="", max_body_bytes=1024))
    handler: Any = make_handler(build_resolver())
    response = handler(event(""), Context())
    assert "Access-Control-Allow-Origin" not in response["headers"]
