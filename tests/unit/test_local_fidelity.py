"""The embedded stack's DynamoDB keeps AWS's transaction semantics while costing per item, not per table."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.local.fidelity import make_conditional_writes_atomic


def _client() -> Any:
    make_conditional_writes_atomic()
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def _items(dynamodb: Any) -> dict[tuple[str, str], str]:
    found = dynamodb.scan(TableName="t")["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]): i.get("v", {}).get("S", "") for i in found}


def _put(pk: str, sk: str, value: str, condition: str | None = None) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": "t", "Item": {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": value}}}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


@mock_aws
def test_a_cancelled_transaction_leaves_every_item_as_it_was() -> None:
    dynamodb = _client()
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"S": "before"}})
    update = {
        "Update": {
            "TableName": "t",
            "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
            "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"S": "changed"}},
        }
    }
    delete = {"Delete": {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}}}}
    for attempt in (
        [update, _put("b", "1", "new"), _put("a", "1", "x", "attribute_not_exists(pk)")],  # the last is refused
        [_put("c", "1", "new"), _put("b", "1", "y"), _put("c", "1", "twice")],  # the same item twice
        [
            delete,
            _put("d", "1", "new"),
            {
                "ConditionCheck": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "zz"}, "sk": {"S": "1"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ],
    ):
        with pytest.raises(ClientError):
            dynamodb.transact_write_items(TransactItems=attempt)
        assert _items(dynamodb) == {("a", "1"): "before"}


@mock_aws
def test_a_transaction_that_holds_is_written_whole() -> None:
    dynamodb = _client()
    dynamodb.transact_write_items(TransactItems=[_put("a", str(n), f"v{n}", "attribute_not_exists(pk)") for n in range(100)])
    assert len(_items(dynamodb)) == 100
    with pytest.raises(ClientError):  # one of 100 already there: none of the others is written
        dynamodb.transact_write_items(
            TransactItems=[_put("b", str(n), "w") for n in range(99)] + [_put("a", "0", "x", "attribute_not_exists(pk)")]
        )
    assert len(_items(dynamodb)) == 100 and _items(dynamodb)[("a", "0")] == "v0"


@mock_aws
def test_a_read_while_another_thread_writes_the_same_item_is_answered() -> None:
    """A read's answer is made from the stored item after moto's backend returned it: without the
    lock around the whole request, a write adding attributes meanwhile broke it ("dictionary changed
    size during iteration")."""
    import threading

    dynamodb = _client()
    key = {"pk": {"S": "upload"}, "sk": {"S": "u1"}}
    dynamodb.put_item(TableName="t", Item=key | {"v": {"S": "0"}})
    errors: list[Exception] = []

    def write() -> None:
        for n in range(60):
            names = ", ".join(f"a{n}_{i} = :v" for i in range(40))
            dropped = ", ".join(f"a{n - 1}_{i}" for i in range(40))
            dynamodb.update_item(
                TableName="t",
                Key=key,
                UpdateExpression=f"SET {names} REMOVE {dropped}" if n else f"SET {names}",
                ExpressionAttributeValues={":v": {"S": str(n)}},
            )

    def read() -> None:
        try:
            for _ in range(60):
                dynamodb.get_item(TableName="t", Key=key)
        except Exception as error:  # the race's symptom, collected to be asserted on
            errors.append(error)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within a run
    try:
        threads = [threading.Thread(target=write), threading.Thread(target=read), threading.Thread(target=read)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
