"""The sharing table: grants in their owner's partition, access requests in their dataset's.

Grants are `OWNER#<owner>` / `GRANT#<grantee department>#<grant id>`: the grants that can apply to
one caller on one dataset (on that dataset, or on its tags) are one key query between two
departments, flat in the number of grants in the platform; the `by_grantee` index answers "what may
my department see" for listings. Requests are `DATASET#<id>` / `REQUEST#<id>`, and `by_owner_status`
(`<owner>#<status>`, created_at) lists a department's pending requests for its stewards.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core import idempotency
from functions.core.dynamo import DynamoTable, batch_get, decode_cursor, encode_cursor, from_item, is_conditional_failure, to_item
from functions.core.errors import Busy, Conflict, InvalidRequest, NotFound
from functions.core.events import EventDetail, from_entry, to_entry
from functions.sharing.models import AccessRequest, Grant

OUTBOX = "OUTBOX"
INDEX_ATTEMPTS = 8  # a grant change retried (backing off) when another change to the grantee's index came first


def _pk(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


def _grant_key(grant: Grant) -> dict[str, str]:
    return {"pk": f"OWNER#{grant.owner}", "sk": f"GRANT#{grant.grantee_department}#{grant.grant_id}"}


def _index_key(grantee: str) -> dict[str, str]:
    return {"pk": f"GRANTEE#{grantee}", "sk": "GRANTS"}


def _indexed(grant_id: str) -> str:
    return f"grant_{grant_id}"


class SharingRepository(DynamoTable):
    def put_grant(self, grant: Grant, events: Sequence[EventDetail] = ()) -> str | None:
        """Store a new grant (and the events it causes, in the outbox); returns the outbox entry."""
        return self._write([self._new(_grant_record(grant))], events, f"Grant {grant.grant_id} exists", grant, grant)

    def grants_between(self, owner: str, grantee: str) -> list[Grant]:
        """Every grant `owner` gave `grantee` (live or not), as stored now: the candidates for one read."""
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": f"OWNER#{owner}", ":prefix": f"GRANT#{grantee}#"}),
            ConsistentRead=True,
        )

    def still_active(self, grant: Grant) -> dict[str, Any]:
        """A transaction's ConditionCheck that `grant` is stored and active (a read decided under it is
        audited, and so served, only if it still is: functions/audit/chain.py `guard`)."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": to_item(_grant_key(grant)),
                "ConditionExpression": "#status = :active",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": to_item({":active": "active"}),
            }
        }

    def index_key(self, grantee: str) -> dict[str, Any]:
        """The key of `grantee`'s index of grants, for a BatchGetItem beside another table's items."""
        return to_item(_index_key(grantee))

    def grants_in_index(self, item: dict[str, Any] | None, owner: str) -> list[Grant] | None:
        """The grants `owner` gave, from a grantee's index item as DynamoDB returned it (None: no index)."""
        if item is None:
            return None
        found = [Grant.model_validate_json(value["S"]) for name, value in item.items() if name.startswith("grant_")]
        return [g for g in found if g.owner == owner]

    def dataset_and_grants(self, catalog: CatalogRepository, dataset_id: str, grantee: str) -> tuple[Dataset | None, list[Grant]]:
        """A dataset and every grant its owner gave `grantee` (live or not): one BatchGetItem of the
        dataset and the grantee's index, then a grants query only if the index does not exist yet."""
        found = batch_get(self.client, {catalog.table_name: [catalog.key(dataset_id)], self._table: [self.index_key(grantee)]})
        dataset = catalog.from_stored(found[catalog.table_name][0]) if found[catalog.table_name] else None
        if dataset is None or dataset.owner == grantee:
            return dataset, []
        indexed = self.grants_in_index(found[self._table][0] if found[self._table] else None, dataset.owner)
        return dataset, indexed if indexed is not None else self.grants_between(dataset.owner, grantee)

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
        revoked = grant.model_copy(update={"status": "revoked", "revoked_at": now, "revoked_by": by})
        return self._write([update], events, f"Grant {grant.grant_id} is already revoked", result, revoked)

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
        return self._write(items, events, f"Access request {request.request_id} was already decided", grant or request, grant)

    # -- the outbox: events written with the change they report, published after it
    def _write(
        self,
        items: list[dict[str, Any]],
        events: Sequence[EventDetail],
        conflict: str,
        result: Grant | AccessRequest | None,
        grant: Grant | None = None,
    ) -> str | None:
        """One transaction: the change, (if any) the grant's new state in its grantee's index, its
        events in the outbox, and (under an idempotency key) the result it answers with. Conflict if
        a condition of the change fails; AlreadyCommitted if an earlier call with the same idempotency
        key committed this change. Retried when only the index's condition failed (another grant to
        the same department changed it first)."""
        too_large = False
        for attempt in range(INDEX_ATTEMPTS):
            changes = [*items, *([self._index_entry(grant, too_large)] if grant else [])]
            entry = None
            if events:
                entry = f"{datetime.now(UTC).isoformat(timespec='microseconds')}#{secrets.token_hex(8)}"
                record = {"pk": OUTBOX, "sk": entry, "events": json.dumps([to_entry(e) for e in events])}
                changes = [*changes, self._new(record)]
            keyed = idempotency.current.get()
            if keyed is not None and result is not None:
                changes = [*changes, keyed.commit_item(result.model_dump_json())]
            try:
                self.client.transact_write_items(TransactItems=changes)
                return entry
            except Exception as error:
                if grant is not None and not too_large and _outgrown(error, len(items)):
                    too_large = True  # the index is deleted instead: readers query the grants
                    continue
                if not is_conditional_failure(error):
                    raise
                reasons = [r.get("Code") or "None" for r in getattr(error, "response", {}).get("CancellationReasons", [])]
                index_failed = grant is not None and len(reasons) > len(items) and reasons[len(items)] != "None"
                only_index = index_failed and all(code == "None" for n, code in enumerate(reasons) if n != len(items))
                # TransactionConflict: another transaction held one of the items (in DynamoDB, two
                # changes of grants to one department meet on its index): nothing was decided.
                contended = "TransactionConflict" in reasons and all(code in ("None", "TransactionConflict") for code in reasons)
                if only_index or contended:
                    if attempt + 1 < INDEX_ATTEMPTS:
                        time.sleep(random.uniform(0, 0.01 * 2**attempt))
                        continue  # the index is read (or built) afresh
                    department = grant.grantee_department if grant else "this department"
                    raise Busy(f"Grants to {department} are changing: try again") from None
                committed = keyed.committed() if keyed is not None and result is not None else None
                if committed is not None:
                    raise idempotency.AlreadyCommitted(committed) from None
                raise Conflict(conflict) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _index_entry(self, grant: Grant, too_large: bool) -> dict[str, Any]:
        """The transaction entry keeping `grant`'s grantee's index in step: the grant set on an index
        that exists, else the whole index built (only if still absent); deleted if it outgrew an item."""
        key = to_item(_index_key(grant.grantee_department))
        if too_large:
            return {"Delete": {"TableName": self._table, "Key": key}}
        found = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        if "Item" in found:
            return {
                "Update": {
                    "TableName": self._table,
                    "Key": key,
                    "UpdateExpression": "SET #grant = :grant",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": {"#grant": _indexed(grant.grant_id)},
                    "ExpressionAttributeValues": to_item({":grant": grant.model_dump_json()}),
                }
            }
        grants = {g.grant_id: g for g in self.grants_to(grant.grantee_department)} | {grant.grant_id: grant}
        record = _index_key(grant.grantee_department) | {_indexed(g.grant_id): g.model_dump_json() for g in grants.values()}
        return {"Put": {"TableName": self._table, "Item": to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}}

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
        found, cursor = self.requests_page(owner, status, 100, None)
        while cursor:
            more, cursor = self.requests_page(owner, status, 100, cursor)
            found.extend(more)
        return found

    def requests_page(self, owner: str, status: str, limit: int, cursor: str | None) -> tuple[list[AccessRequest], str | None]:
        """A page of the requests to `owner` in `status`, oldest first, and the cursor of the next page."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by_owner_status",
            "KeyConditionExpression": "owner_status = :s",
            "ExpressionAttributeValues": to_item({":s": f"{owner}#{status}"}),
            "Limit": limit,
        }
        start = decode_cursor(cursor, "by_owner_status", {"pk", "sk", "owner_status", "created_at"})
        if start and start["owner_status"] != f"{owner}#{status}":
            raise InvalidRequest("The cursor is not one this listing issued")  # another department's requests
        if start:
            query["ExclusiveStartKey"] = to_item(start)
        response = self.client.query(**query)
        last = response.get("LastEvaluatedKey")
        return [_request(from_item(item)) for item in response["Items"]], encode_cursor(
            from_item(last), "by_owner_status"
        ) if last else None

    def count_requests(self, owner: str, status: str) -> int:
        """How many requests to `owner` are in `status` (counted by DynamoDB, not read)."""
        counted, start = 0, None
        while True:
            query: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "by_owner_status",
                "KeyConditionExpression": "owner_status = :s",
                "ExpressionAttributeValues": to_item({":s": f"{owner}#{status}"}),
                "Select": "COUNT",
            }
            if start:
                query["ExclusiveStartKey"] = start
            response = self.client.query(**query)
            counted += int(response["Count"])
            start = response.get("LastEvaluatedKey")
            if not start:
                return counted

    def _query(self, **query: Any) -> list[Grant]:
        records: list[Grant] = []
        for page in self.client.get_paginator("query").paginate(TableName=self._table, **query):
            records.extend(_grant(from_item(item)) for item in page["Items"])
        return records


def _outgrown(error: Exception, index_position: int) -> bool:
    """Whether a transaction failed because the grantee's index would outgrow DynamoDB's item size
    (a cancellation reason for that entry; a validation error of the whole call, as moto answers)."""
    response = getattr(error, "response", None) or {}
    reasons = response.get("CancellationReasons", [])
    if len(reasons) > index_position and reasons[index_position].get("Code") == "ValidationError":
        return True
    error_body = response.get("Error", {})
    return error_body.get("Code") == "ValidationException" and "size" in str(error_body.get("Message", "")).lower()


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
