"""Each grantee department's index of grants, against moto: kept in step with every grant change in
the same transaction, built whole when absent (grants written before it existed), never partial
under concurrent changes, and read beside the dataset in one BatchGetItem."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from functions.catalog.repository import CatalogRepository
from functions.sharing.models import Grant
from functions.sharing.repository import SharingRepository
from tests.integration.conftest import Aws
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
