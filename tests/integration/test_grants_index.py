"""Each grantee department's index of grants, against moto: kept in step with every grant change in
the same transaction, built whole when absent (grants written before it existed), never partial
under concurrent changes, and read beside the dataset in one BatchGetItem."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.audit.chain import AuditLog
from functions.catalog.repository import CatalogRepository
from functions.core.errors import Busy, GrantRevoked
from functions.core.settings import Settings
from functions.sharing.models import Grant, GrantCreate
from functions.sharing.repository import SharingRepository
from functions.sharing.service import SharingService
from tests.integration.conftest import ANALYST, STEWARDS, Aws, commit_version
from tests.integration.test_repositories import dataset


def grant(grant_id: str, owner: str = "transport", grantee: str = "health", **changes: object) -> Grant:
    values: dict[str, object] = dict(
        grant_id=grant_id,
        owner=owner,
        grantee_department=grantee,
        purpose="Ambulance routing research",
        purpose_category="research",
        dataset_id="traffic-flow",
        created_by="steward-a",
        created_at="2026-12-01T00:00:00Z",
    )
    return Grant.model_validate(values | changes)


@pytest.fixture
def repositories(moto_aws: Aws, atomic_conditional_writes: None) -> tuple[CatalogRepository, SharingRepository, Any]:
    client = moto_aws.client("dynamodb")
    catalog = CatalogRepository(moto_aws.table("catalog"), client)
    catalog.create(dataset("traffic-flow"))
    return catalog, SharingRepository(moto_aws.table("sharing"), client), client


def read(
    catalog: CatalogRepository, sharing: SharingRepository, client: Any, grantee: str = "health"
) -> tuple[list[str], list[str]]:
    """The grant ids and states dataset_and_grants returns, and the AWS calls it made."""
    calls: list[str] = []
    handler = lambda model, **_: calls.append(model.name)  # noqa: E731
    client.meta.events.register("before-call.dynamodb.*", handler)
    try:
        found, grants = sharing.dataset_and_grants(catalog, "traffic-flow", grantee)
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", handler)
    assert found is not None and found.dataset_id == "traffic-flow"
    return sorted(f"{g.grant_id}:{g.status}" for g in grants), calls


def test_every_grant_change_is_in_the_index_read_in_one_call(
    repositories: tuple[CatalogRepository, SharingRepository, Any],
) -> None:
    catalog, sharing, client = repositories
    assert read(catalog, sharing, client) == ([], ["BatchGetItem", "Query"])  # no index yet: the grants are queried
    sharing.put_grant(grant("g1"))
    sharing.put_grant(grant("g2"))
    sharing.put_grant(grant("g9", owner="environment"))  # another owner's grant to health: not this dataset's
    sharing.put_grant(grant("g3", grantee="police"))
    assert read(catalog, sharing, client) == (["g1:active", "g2:active"], ["BatchGetItem"])
    sharing.revoke(grant("g1"), "steward-b", "2026-12-02T00:00:00Z")
    assert read(catalog, sharing, client) == (["g1:revoked", "g2:active"], ["BatchGetItem"])
    assert read(catalog, sharing, client, "police")[0] == ["g3:active"]
    assert sharing.dataset_and_grants(catalog, "traffic-flow", "transport")[1] == []  # the owner reads on its own right
    assert sharing.dataset_and_grants(catalog, "no-such-dataset", "health") == (None, [])


def test_grants_written_before_the_index_are_in_it_when_it_is_built(
    repositories: tuple[CatalogRepository, SharingRepository, Any],
) -> None:
    catalog, sharing, client = repositories
    sharing.put_grant(grant("g1"))
    sharing.revoke(grant("g1"), "steward-b", "2026-12-02T00:00:00Z")
    client.delete_item(TableName=sharing.table_name, Key=sharing.index_key("health"))  # as before the index existed
    assert read(catalog, sharing, client) == (["g1:revoked"], ["BatchGetItem", "Query"])
    sharing.put_grant(grant("g2"))
    assert read(catalog, sharing, client) == (["g1:revoked", "g2:active"], ["BatchGetItem"])


def test_grants_changed_at_once_are_all_in_the_index(repositories: tuple[CatalogRepository, SharingRepository, Any]) -> None:
    catalog, sharing, client = repositories
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def give(number: int) -> None:
        barrier.wait()
        try:
            sharing.put_grant(grant(f"g{number}"))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=give, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert read(catalog, sharing, client) == ([f"g{n}:active" for n in range(6)], ["BatchGetItem"])


def test_an_index_outgrowing_an_item_is_dropped_and_reads_query_the_grants(
    repositories: tuple[CatalogRepository, SharingRepository, Any],
) -> None:
    catalog, sharing, client = repositories
    columns = [f"column_{n:03d}_" + "x" * 40 for n in range(500)]
    for number in range(16):  # ~27 KB each: the index would pass DynamoDB's 400 KB item at the 15th
        sharing.put_grant(grant(f"g{number:02d}", purpose="x" * 2000, terms={"columns": columns}))
    ids, calls = read(catalog, sharing, client)
    assert ids == [f"g{n:02d}:active" for n in range(16)]
    assert calls == ["BatchGetItem", "Query"]


def published_and_given(sharing: SharingService, settings: Settings) -> Grant:
    """traffic-flow with a version, and a whole grant on it to environment."""
    commit_version(settings, "traffic-flow", "transport", 1, ["curated/transport/traffic-flow/v1.parquet"], 2)
    request = GrantCreate(
        grantee_department="environment",
        purpose="Pollution near congested roads",
        purpose_category="environment-monitoring",
        legal_basis="public-task",
    )
    return sharing.grant(STEWARDS[0], "traffic-flow", request)


def test_a_grant_revoked_behind_the_index_lets_no_read_through(sharing: SharingService, settings: Settings) -> None:
    """A revocation the index missed (written by an older function version during a rollout, say)
    cannot let a read through: the read's audit entry is written only while its grant is stored
    active, and the read is decided again on the grants as they are."""
    given = published_and_given(sharing, settings)
    assert sharing.read(ANALYST, "traffic-flow", None, None).files  # under the grant
    boto3.client("dynamodb", region_name="eu-west-1").update_item(
        TableName=settings.sharing_table,
        Key={"pk": {"S": "OWNER#transport"}, "sk": {"S": f"GRANT#environment#{given.grant_id}"}},
        UpdateExpression="SET #status = :revoked",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":revoked": {"S": "revoked"}},
    )
    repository = SharingRepository(settings.sharing_table)
    _, indexed = repository.dataset_and_grants(CatalogRepository(settings.catalog_table), "traffic-flow", "environment")
    assert [g.status for g in indexed] == ["active"]  # the index missed it
    with pytest.raises(GrantRevoked):
        sharing.read(ANALYST, "traffic-flow", None, None)
    decisions = [
        e.decision for e in AuditLog(settings.audit_table).read("transport", limit=1000) if e.actor_department == "environment"
    ]
    assert decisions == ["allow", "deny"]  # the refused read allowed nothing, even for a moment


class Contended:
    """A DynamoDB client whose transactions meet another on the grantee's index `conflicts` times."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.transactions = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": {"pk": {"S": "GRANTEE#health"}, "sk": {"S": "GRANTS"}}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> None:  # noqa: N803 (boto3's name)
        self.transactions += 1
        if self.transactions <= self.conflicts:
            reasons = [{"Code": "None"}, {"Code": "TransactionConflict"}]
            raise ClientError(
                {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}, "CancellationReasons": reasons},
                "TransactWriteItems",
            )


def test_grants_meeting_on_an_index_are_retried_and_never_answered_as_if_they_existed() -> None:
    contended = Contended(conflicts=3)
    SharingRepository("sharing", contended).put_grant(grant("g1"))
    assert contended.transactions == 4
    with pytest.raises(Busy) as busy:
        SharingRepository("sharing", Contended(conflicts=100)).put_grant(grant("g2"))
    assert busy.value.status == 503 and "exists" not in str(busy.value)


def test_a_grant_the_index_missed_is_found_before_a_read_is_refused(sharing: SharingService, settings: Settings) -> None:
    given = published_and_given(sharing, settings)
    boto3.client("dynamodb", region_name="eu-west-1").update_item(  # as if an older version had given it
        TableName=settings.sharing_table,
        Key={"pk": {"S": "GRANTEE#environment"}, "sk": {"S": "GRANTS"}},
        UpdateExpression="REMOVE #grant",
        ExpressionAttributeNames={"#grant": f"grant_{given.grant_id}"},
    )
    assert sharing.read(ANALYST, "traffic-flow", None, None).files
