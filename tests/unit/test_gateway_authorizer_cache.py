"""The embedded gateway keeps an authorizer's answer per Authorization header as API Gateway does
when the authorizer is cached (infra/spec.py AUTHORIZER_CACHE_SECONDS): the recipient authorizer
is asked once per token, the signed-request authorizer every time, and a refusal is never kept."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.gateway import Gateway
from infra.spec import AUTHORIZER_CACHE_SECONDS


class Authorizers:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.refusing = False

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(name)
        if self.refusing:
            raise Exception("Unauthorized")
        return {"principalId": "environment/recipient", "context": {"department_id": "environment"}}


def event(token: str) -> dict[str, Any]:
    keys = ("resource", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters")
    return dict(
        dict.fromkeys(keys),
        path="/delta-sharing/shares",
        httpMethod="GET",
        headers={"authorization": f"Bearer {token}"},
        pathParameters=None,
        stageVariables=None,
        requestContext={},
    )


def test_a_cached_authorizer_is_asked_once_per_token_and_a_refusal_is_not_kept() -> None:
    assert AUTHORIZER_CACHE_SECONDS.get("recipient-authorizer", 0) > 0 and AUTHORIZER_CACHE_SECONDS.get("authorizer", 0) == 0
    authorizers = Authorizers()
    gateway = Gateway(authorizers)  # type: ignore[arg-type]
    try:
        for _ in range(3):
            gateway._authorize("recipient-authorizer", event("token-a"))
            gateway._authorize("authorizer", event("signed"))
        assert authorizers.asked == ["recipient-authorizer"] + ["authorizer"] * 3
        authorizers.refusing = True
        for _ in range(2):
            with pytest.raises(Exception, match="Unauthorized"):
                gateway._authorize("recipient-authorizer", event("token-b"))
        assert authorizers.asked.count("recipient-authorizer") == 3  # token-b asked each time
        gateway._authorize("recipient-authorizer", event("token-a"))  # still kept
        assert authorizers.asked.count("recipient-authorizer") == 3
    finally:
        gateway.server.server_close()
