"""A consumer function for the pump's test: fails the messages whose body says so."""

from __future__ import annotations

from typing import Any

received: list[str] = []


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        received.append(record["body"])
        if record["body"].startswith("poison"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
