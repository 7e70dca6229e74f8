"""Delta Sharing recipient tokens against moto: only a hash is stored, and a token stops when it
expires, is revoked, or is altered in any way."""

from __future__ import annotations

from dataclasses import replace

import pytest

from functions.catalog.repository import CatalogRepository
from functions.core.errors import Unauthenticated
from functions.core.settings import Settings
from functions.identity.directory import DirectoryRepository
from functions.sharing.delta import RecipientLookup
from functions.sharing.recipients import RecipientRepository, ShareReader, ShareRecipient, authenticate, token_digest
from functions.sharing.repository import SharingRepository
from tests.integration.conftest import Aws
from tests.integration.test_grants_index import grant
from tests.integration.test_repositories import dataset

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


def test_each_delta_sharing_request_confirms_its_token_and_department_in_its_one_read(moto_aws: Aws, settings: Settings) -> None:
    """API Gateway keeps the recipient authorizer's answer for minutes: the function confirms the
    token and the department's status again, in the same BatchGetItem as the dataset and grants."""
    client = moto_aws.client("dynamodb")
    directory = DirectoryRepository(settings.directory_table, client)
    assert directory.get_department("environment") is not None  # the stack's departments exist
    recipients = RecipientRepository(settings.sharing_table, client)
    recipients.put(recipient(), token_digest(TOKEN))
    catalog = CatalogRepository(settings.catalog_table, client)
    catalog.create(dataset("traffic-flow"))
    grants = SharingRepository(settings.sharing_table, client)
    grants.put_grant(grant("g1", grantee="environment"))
    now = ["2026-11-15T00:00:00+00:00"]
    lookup = RecipientLookup(recipients, directory, catalog, grants, clock=lambda: now[0])
    reader = ShareReader(
        recipient_id="s" + "a" * 24, owner="transport", department="environment", token_sha256=token_digest(TOKEN)
    )
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    confirmed = lookup.confirm(reader, "traffic-flow")
    assert calls == ["BatchGetItem"]
    assert confirmed.dataset is not None and confirmed.dataset.dataset_id == "traffic-flow"
    assert [g.grant_id for g in confirmed.grants or []] == ["g1"]
    assert confirmed.reader.department_status == "active"
    directory.set_department_status("environment", "suspended")
    assert lookup.confirm(reader).reader.department_status == "suspended"  # the policies refuse it from there
    for other, reason in (
        (replace(reader, token_sha256=token_digest(TOKEN + "x")), "unknown_token"),
        (replace(reader, department="transport"), "unknown_token"),  # a token stands for its own pair only
        (replace(reader, recipient_id="s" + "b" * 24), "unknown_token"),
    ):
        with pytest.raises(Unauthenticated) as refused:
            lookup.confirm(other)
        assert refused.value.reason == reason
    now[0] = "2026-12-01T00:00:00+00:00"
    with pytest.raises(Unauthenticated) as expired:
        lookup.confirm(reader)
    assert expired.value.reason == "token_expired"
    now[0] = "2026-11-15T00:00:00+00:00"
    recipients.revoke(recipient(), "steward", "2026-11-16T00:00:00+00:00")
    with pytest.raises(Unauthenticated) as revoked:
        lookup.confirm(reader, "traffic-flow")
    assert revoked.value.reason == "revoked_token"
