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
