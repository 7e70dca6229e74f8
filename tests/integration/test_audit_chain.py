"""The audit chain in DynamoDB: appends from concurrent writers never fork it."""

from __future__ import annotations

import threading

from cityshare.audit import verify_chain
from functions.audit.chain import AuditEvent, AuditLog
from tests.integration.conftest import Aws


def event(number: int) -> AuditEvent:
    return AuditEvent(
        actor_department="environment",
        actor_principal=f"p{number}",
        action="ViewDataset",
        resource="Dataset::traffic-flow",
        decision="allow",
        policies=["owner-views-datasets"],
        details={"n": number},
    )


def test_concurrent_appends_make_one_gapless_verifiable_chain(moto_aws: Aws, atomic_conditional_writes: None) -> None:
    log = AuditLog(moto_aws.table("audit"), moto_aws.client("dynamodb"))
    errors: list[Exception] = []

    def write(writer: int) -> None:
        try:
            for number in range(5):
                log.append("transport", event(writer * 10 + number))
        except Exception as error:
            errors.append(error)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not errors
    entries = log.read("transport", limit=100)
    assert [e.seq for e in entries] == list(range(1, 21))
    assert verify_chain("transport", [e.model_dump() for e in entries]).intact
    assert len({e.actor_principal for e in entries}) == 20


def test_a_tampered_entry_in_the_table_is_detected(moto_aws: Aws) -> None:
    client = moto_aws.client("dynamodb")
    log = AuditLog(moto_aws.table("audit"), client)
    for number in range(3):
        log.append("health", event(number))
    client.update_item(
        TableName=moto_aws.table("audit"),
        Key={"chain": {"S": "health"}, "seq": {"N": "2"}},
        UpdateExpression="SET decision = :d",
        ExpressionAttributeValues={":d": {"S": "deny"}},
    )
    report = verify_chain("health", [e.model_dump() for e in log.read("health")])
    assert not report.intact and "entry 2" in report.problems[0]
    client.delete_item(TableName=moto_aws.table("audit"), Key={"chain": {"S": "health"}, "seq": {"N": "2"}})
    assert not verify_chain("health", [e.model_dump() for e in log.read("health")]).intact


def test_several_entries_are_written_together_after_whoever_wrote_last(moto_aws: Aws, atomic_conditional_writes: None) -> None:
    """append_many writes consecutive entries in one transaction; a writer that took the head in
    between (another process: this one's remembered head is stale) makes it re-read and follow."""
    client = moto_aws.client("dynamodb")
    mine, other = AuditLog(moto_aws.table("audit"), client), AuditLog(moto_aws.table("audit"), client)
    mine.append("logistics", event(0))
    other.append("logistics", event(1))  # unknown to `mine`, whose head is still entry 1
    written = mine.append_many("logistics", [event(n) for n in range(2, 6)])
    assert [e.seq for e in written] == [3, 4, 5, 6]
    entries = mine.read("logistics", limit=100)
    assert [e.actor_principal for e in entries] == [f"p{n}" for n in range(6)]
    assert verify_chain("logistics", [e.model_dump() for e in entries]).intact


def test_a_write_of_several_entries_whose_answer_was_lost_is_not_written_twice(moto_aws: Aws) -> None:
    """The SDK retries a transaction whose answer was lost: the retry is refused by its own condition
    (the entries are there), and that is recognised as this write's success, not contention."""
    client = moto_aws.client("dynamodb")
    log = AuditLog(moto_aws.table("audit"), client)
    log.append("logistics", event(0))
    real = client.transact_write_items
    calls = {"n": 0}

    def applied_then_retried(**request: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            real(**request)  # applied; its answer lost, the SDK sends it again:
        return real(**request)

    client.transact_write_items = applied_then_retried
    try:
        written = log.append_many("logistics", [event(1), event(2)])
    finally:
        client.transact_write_items = real
    assert [e.seq for e in written] == [2, 3]
    entries = log.read("logistics", limit=100)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert verify_chain("logistics", [e.model_dump() for e in entries]).intact
