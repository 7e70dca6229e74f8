"""Directory, catalog and nonce tables against moto."""

from __future__ import annotations

import threading

import pytest

from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogQuery, CatalogRepository
from functions.core.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from functions.identity.directory import DirectoryRepository
from functions.identity.models import Department, Principal, PublicKey
from functions.identity.nonces import NonceStore
from tests.integration.conftest import Aws

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


def dataset(dataset_id: str, owner: str = "transport", **changes: object) -> Dataset:
    values: dict[str, object] = dict(
        dataset_id=dataset_id,
        title=f"Title {dataset_id}",
        classification="internal",
        schema=SCHEMA,
        owner=owner,
        created_at="t",
        updated_at="t",
        created_by="p",
    )
    values.update(changes)
    return Dataset.model_validate(values)


def test_directory_finds_department_principal_and_key_in_one_call(moto_aws: Aws) -> None:
    client = moto_aws.client("dynamodb")
    directory = DirectoryRepository(moto_aws.table("directory"), client)
    directory.create_department(Department(department_id="transport", name="Transport", created_at="t"))
    with pytest.raises(AlreadyExists):
        directory.create_department(Department(department_id="transport", name="Again", created_at="t"))
    directory.put_principal(Principal(department_id="transport", principal_id="alice", roles=["member"]))
    key = PublicKey(
        department_id="transport",
        principal_id="alice",
        kid="k1",
        alg="ES256",
        jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y"},
        created_at="t",
    )
    directory.add_key(key)
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    signer = directory.find_signer("transport", "alice", "k1")
    assert calls == ["BatchGetItem"]
    assert signer.department and signer.department.name == "Transport"
    assert signer.principal and signer.principal.roles == ["member"]
    assert signer.key == key
    missing = directory.find_signer("transport", "mallory", "k9")
    assert missing.principal is None and missing.key is None
    directory.retire_key("transport", "k1")
    assert directory.list_keys("transport")[0].status == "retired"
    with pytest.raises(NotFound):
        directory.retire_key("transport", "nope")
    assert [d.department_id for d in directory.list_departments()] == ["transport"]
    assert directory.set_department_status("transport", "suspended").status == "suspended"


def test_catalog_pages_by_owner_and_filters_without_scanning(moto_aws: Aws) -> None:
    client = moto_aws.client("dynamodb")
    catalog = CatalogRepository(moto_aws.table("catalog"), client)
    for number in range(5):
        catalog.create(dataset(f"t-{number}", tags=["traffic"] if number % 2 else ["air"]))
    catalog.create(dataset("e-0", owner="environment", classification="public"))
    operations: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: operations.append(model.name))
    first = list(zip(range(2), catalog.scan_pages(CatalogQuery(owner="transport"), page_size=2, cursor=None), strict=False))
    cursor = first[-1][1][1]
    rest = [d.dataset_id for d, _ in catalog.scan_pages(CatalogQuery(owner="transport"), page_size=2, cursor=cursor)]
    assert [d.dataset_id for _, (d, _) in first] + rest == [f"t-{n}" for n in range(5)]
    assert set(operations) == {"Query"}
    tagged = [d.dataset_id for d, _ in catalog.scan_pages(CatalogQuery(tag="traffic"), page_size=10, cursor=None)]
    assert tagged == ["t-1", "t-3"]
    public = [d.dataset_id for d, _ in catalog.scan_pages(CatalogQuery(classification="public"), page_size=10, cursor=None)]
    assert public == ["e-0"]
    with pytest.raises(InvalidRequest):
        list(catalog.scan_pages(CatalogQuery(), page_size=2, cursor=cursor))  # a cursor of another index


def test_catalog_metadata_update_is_conditional_on_the_revision(moto_aws: Aws) -> None:
    catalog = CatalogRepository(moto_aws.table("catalog"), moto_aws.client("dynamodb"))
    catalog.create(dataset("d-1"))
    catalog.update_metadata(dataset("d-1", title="Second", revision=2), ["title"], expected_revision=1)
    with pytest.raises(Conflict):
        catalog.update_metadata(dataset("d-1", title="Lost", revision=2), ["title"], expected_revision=1)
    stored = catalog.get("d-1")
    assert stored is not None and stored.title == "Second"


def test_a_nonce_is_used_once_even_under_concurrency(moto_aws: Aws, atomic_conditional_writes: None) -> None:
    nonces = NonceStore(moto_aws.table("nonces"), moto_aws.client("dynamodb"))
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(nonces.use_once("transport#abc", 2000, 1000))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert nonces.use_once("transport#abc", 5000, 3000)  # expired records count as absent (TTL deletes lazily)
