"""Delta Sharing recipient tokens against moto: only a hash is stored, and a token stops when it
expires, is revoked, or is altered in any way."""

from __future__ import annotations

import pytest

from functions.core.errors import Unauthenticated
from functions.core.settings import Settings
from functions.sharing.recipients import RecipientRepository, ShareRecipient, authenticate, token_digest
from tests.integration.conftest import Aws

TOKEN = "s" + "a" * 24 + ".the-secret-part-of-the-token"


def recipient(**changes: str) -> ShareRecipient:
    values = {
        "recipient_id": "s" + "a" * 24,
        "owner": "transport",
        "department": "environment",
        "created_by": "steward",
        "created_at": "2026-11-01T00:00:00+00:00",
        "expires_at": "2026-12-01T00:00:00+00:00",
    }
    return ShareRecipient.model_validate(values | changes)


def test_a_token_authenticates_until_it_expires_or_is_revoked(moto_aws: Aws, settings: Settings) -> None:
    repository = RecipientRepository(settings.sharing_table)
    repository.put(recipient(), token_digest(TOKEN))
    stored = moto_aws.client("dynamodb").scan(TableName=settings.sharing_table)["Items"]
    assert not any("the-secret-part" in str(item) for item in stored)  # only the SHA-256 is kept
    assert authenticate(repository, TOKEN, "2026-11-15T00:00:00+00:00").department == "environment"
    for token, reason in (
        (TOKEN + "x", "unknown_token"),
        (TOKEN.replace("aaaa", "aaab", 1), "unknown_token"),
        ("no-dot-at-all", "malformed_token"),
        ("s" + "a" * 24 + ".", "malformed_token"),
        ("x" * 300, "malformed_token"),
    ):
        with pytest.raises(Unauthenticated) as refused:
            authenticate(repository, token, "2026-11-15T00:00:00+00:00")
        assert refused.value.reason == reason, token
    with pytest.raises(Unauthenticated) as expired:
        authenticate(repository, TOKEN, "2026-12-01T00:00:00+00:00")
    assert expired.value.reason == "token_expired"
    repository.revoke(recipient(), "steward", "2026-11-16T00:00:00+00:00")
    with pytest.raises(Unauthenticated) as revoked:
        authenticate(repository, TOKEN, "2026-11-17T00:00:00+00:00")
    assert revoked.value.reason == "revoked_token"
    assert [r.status for r in repository.of_owner("transport")] == ["revoked"]
