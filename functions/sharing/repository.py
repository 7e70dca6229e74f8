"""The sharing table: grants in their owner's partition, access requests in their dataset's.

Grants are `OWNER#<owner>` / `GRANT#<grantee department>#<grant id>`: the grants that can apply to
one caller on one dataset (on that dataset, or on its tags) are one key query between two
departments, flat in the number of grants in the platform; the `by_grantee` index answers "what may
my department see" for listings. Requests are `DATASET#<id>` / `REQUEST#<id>`, and `by_owner_status`
(`<owner>#<status>`, created_at) lists a department's pending requests for its stewards.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from functions.core import idempotency
from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import Conflict, NotFound
from functions.core.events import EventDetail, from_entry, to_entry
from functions.sharing.models import AccessRequest, Grant

OUTBOX = "OUTBOX"


def _pk(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


def _grant_key(grant: Grant) -> dict[str, str]:
    return {"pk": f"OWNER#{grant.owner}", "sk": f"GRANT#{grant.grantee_department}#{grant.grant_id}"}


class SharingRepository(DynamoTable):
    def put_grant(self, grant: Grant, events: Sequence[EventDetail] = ()) -> str | None:
        """Store a new grant (and the events it causes, in the outbox); returns the outbox entry."""
        return self._write([self._new(_grant_record(grant))], events, f"Grant {grant.grant_id} exists", grant)

    def grants_between(self, owner: str, grantee: str) -> list[Grant]:
        """Every grant `owner` gave `grantee` (live or not): the candidates for one read."""
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": f"OWNER#{owner}", ":prefix": f"GRANT#{grantee}#"}),
        )

    def grants_of(self, owner: str) -> list[Grant]:
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": f"OWNER#{owner}", ":prefix": "GRANT#"}),
        )

    def grants_to(self, department: str) -> list[Grant]:
        return self._query(
            IndexName="by_grantee",
            KeyConditionExpression="grantee_department = :d",
            ExpressionAttributeValues=to_item({":d": department}),
        )

    def revoke(
        self, grant: Grant, by: str, now: str, events: Sequence[EventDetail] = (), result: Grant | None = None
    ) -> str | None:
        """Conditional on the grant being active: of two stewards revoking, one wins, nothing mixes."""
        update = {
            "Update": {
                "TableName": self._table,
                "Key": to_item(_grant_key(grant)),
                "UpdateExpression": "SET #status = :revoked, revoked_at = :now, revoked_by = :by",
                "ConditionExpression": "#status = :active",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_item({":revoked": "revoked", ":active": "active", ":now": now, ":by": by}),
            }
        }
        return self._write([update], events, f"Grant {grant.grant_id} is already revoked", result)

    def put_request(self, request: AccessRequest, events: Sequence[EventDetail] = ()) -> str | None:
        return self._write([self._new(_request_record(request))], events, f"Access request {request.request_id} exists", request)

    def get_request(self, dataset_id: str, request_id: str) -> AccessRequest:
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": _pk(dataset_id), "sk": f"REQUEST#{request_id}"}), ConsistentRead=True
        )
        if "Item" not in response:
            raise NotFound(f"No access request {request_id} for dataset {dataset_id}")
        return _request(from_item(response["Item"]))

    def decide(self, request: AccessRequest, grant: Grant | None = None, events: Sequence[EventDetail] = ()) -> str | None:
        """Record a decision, conditional on the request still pending (two stewards cannot both
        decide); an approval writes its grant in the same transaction, so neither exists alone."""
        decision = {
            "Put": {
                "TableName": self._table,
                "Item": to_item(_request_record(request)),
                "ConditionExpression": "#status = :pending",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_item({":pending": "pending"}),
            }
        }
        items = [decision, *([self._new(_grant_record(grant))] if grant else [])]
        return self._write(items, events, f"Access request {request.request_id} was already decided", grant or request)

    # -- the outbox: events written with the change they report, published after it
    def _write(
        self, items: list[dict[str, Any]], events: Sequence[EventDetail], conflict: str, result: Grant | AccessRequest | None
    ) -> str | None:
        """One transaction: the change, (if any) its events in the outbox, and (under an idempotency
        key) the result it answers with. Conflict if a condition fails; AlreadyCommitted if an earlier
        call with the same idempotency key committed this change."""
        entry = None
        if events:
            entry = f"{datetime.now(UTC).isoformat(timespec='microseconds')}#{secrets.token_hex(8)}"
            record = {"pk": OUTBOX, "sk": entry, "events": json.dumps([to_entry(e) for e in events])}
            items = [*items, self._new(record)]
        keyed = idempotency.current.get()
        if keyed is not None and result is not None:
            items = [*items, keyed.commit_item(result.model_dump_json())]
        try:
            self.client.transact_write_items(TransactItems=items)
        except Exception as error:
            if not is_conditional_failure(error):
                raise
            committed = keyed.committed() if keyed is not None and result is not None else None
            if committed is not None:
                raise idempotency.AlreadyCommitted(committed) from None
            raise Conflict(conflict) from None
        return entry

    def _new(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"Put": {"TableName": self._table, "Item": to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}}

    def outbox(self, written_before: str) -> list[tuple[str, list[EventDetail]]]:
        """Outbox entries older than `written_before` (ISO time): events whose publication did not finish."""
        response = self.client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk < :before",
            ExpressionAttributeValues=to_item({":pk": OUTBOX, ":before": written_before}),
            Limit=100,
        )
        entries = [from_item(item) for item in response["Items"]]
        return [(str(e["sk"]), [from_entry(x) for x in json.loads(str(e["events"]))]) for e in entries]

    def clear_outbox(self, entry: str) -> None:
        self.client.delete_item(TableName=self._table, Key=to_item({"pk": OUTBOX, "sk": entry}))

    # -- privacy budgets: what a grantee department spent on a dataset's private releases
    def spend_privacy(self, dataset_id: str, grantee: str, epsilon: float, budget: float) -> float | None:
        """Add `epsilon` to what `grantee` spent on `dataset_id`, unless that would exceed `budget`
        (None then); returns what is spent after."""
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=to_item({"pk": f"BUDGET#{dataset_id}", "sk": grantee}),
                UpdateExpression="SET spent = if_not_exists(spent, :zero) + :epsilon",
                ConditionExpression="attribute_not_exists(spent) OR spent <= :room",
                ExpressionAttributeValues=to_item({":zero": 0, ":epsilon": epsilon, ":room": budget - epsilon + 1e-9}),
                ReturnValues="UPDATED_NEW",
            )
        except Exception as error:
            if is_conditional_failure(error):
                return None
            raise
        return float(from_item(response["Attributes"])["spent"])

    def privacy_spent(self, dataset_id: str, grantee: str) -> float:
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": f"BUDGET#{dataset_id}", "sk": grantee}), ConsistentRead=True
        )
        return float(from_item(response.get("Item", {})).get("spent", 0))

    def requests_to(self, owner: str, status: str) -> list[AccessRequest]:
        response = self.client.query(
            TableName=self._table,
            IndexName="by_owner_status",
            KeyConditionExpression="owner_status = :s",
            ExpressionAttributeValues=to_item({":s": f"{owner}#{status}"}),
        )
        return [_request(from_item(item)) for item in response["Items"]]

    def _query(self, **query: Any) -> list[Grant]:
        records: list[Grant] = []
        for page in self.client.get_paginator("query").paginate(TableName=self._table, **query):
            records.extend(_grant(from_item(item)) for item in page["Items"])
        return records


def _grant_record(grant: Grant) -> dict[str, Any]:
    return dict(grant.model_dump(exclude_none=True), terms=grant.terms.model_dump_json(), **_grant_key(grant))


def _grant(record: dict[str, Any]) -> Grant:
    values = {k: v for k, v in record.items() if k not in {"pk", "sk"}}
    values["terms"] = json.loads(values["terms"])
    return Grant.model_validate(values)


def _request_record(request: AccessRequest) -> dict[str, Any]:
    values = request.model_dump(exclude_none=True)
    if request.decision is not None:
        values["decision"] = request.decision.model_dump_json()
    return dict(
        values, pk=_pk(request.dataset_id), sk=f"REQUEST#{request.request_id}", owner_status=f"{request.owner}#{request.status}"
    )


def _request(record: dict[str, Any]) -> AccessRequest:
    values = {k: v for k, v in record.items() if k not in {"pk", "sk", "owner_status"}}
    if "decision" in values:
        values["decision"] = json.loads(values["decision"])
    return AccessRequest.model_validate(values)
