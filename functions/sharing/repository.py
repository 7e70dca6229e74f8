"""The sharing table: grants in their owner's partition, access requests in their dataset's.

Grants are `OWNER#<owner>` / `GRANT#<grantee department>#<grant id>`: the grants that can apply to
one caller on one dataset (on that dataset, or on its tags) are one key query between two
departments, flat in the number of grants in the platform; the `by_grantee` index answers "what may
my department see" for listings. Requests are `DATASET#<id>` / `REQUEST#<id>`, and `by_owner_status`
(`<owner>#<status>`, created_at) lists a department's pending requests for its stewards.
"""

from __future__ import annotations

import json
from typing import Any

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import Conflict, NotFound
from functions.sharing.models import AccessRequest, Grant


def _pk(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


def _grant_key(grant: Grant) -> dict[str, str]:
    return {"pk": f"OWNER#{grant.owner}", "sk": f"GRANT#{grant.grantee_department}#{grant.grant_id}"}


class SharingRepository(DynamoTable):
    def put_grant(self, grant: Grant) -> None:
        self.client.put_item(
            TableName=self._table, Item=to_item(_grant_record(grant)), ConditionExpression="attribute_not_exists(pk)"
        )

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

    def revoke(self, grant: Grant, by: str, now: str) -> Grant:
        """Conditional on the grant being active: of two stewards revoking, one wins, nothing mixes."""
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=to_item(_grant_key(grant)),
                UpdateExpression="SET #status = :revoked, revoked_at = :now, revoked_by = :by",
                ConditionExpression="#status = :active",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":revoked": "revoked", ":active": "active", ":now": now, ":by": by}),
                ReturnValues="ALL_NEW",
            )
        except Exception as error:
            if is_conditional_failure(error):
                raise Conflict(f"Grant {grant.grant_id} is already revoked") from None
            raise
        return _grant(from_item(response["Attributes"]))

    def put_request(self, request: AccessRequest) -> None:
        self.client.put_item(
            TableName=self._table, Item=to_item(_request_record(request)), ConditionExpression="attribute_not_exists(pk)"
        )

    def get_request(self, dataset_id: str, request_id: str) -> AccessRequest:
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": _pk(dataset_id), "sk": f"REQUEST#{request_id}"}), ConsistentRead=True
        )
        if "Item" not in response:
            raise NotFound(f"No access request {request_id} for dataset {dataset_id}")
        return _request(from_item(response["Item"]))

    def decide(self, request: AccessRequest, grant: Grant | None = None) -> None:
        """Record a decision, conditional on the request still pending (two stewards cannot both
        decide); an approval writes its grant in the same transaction, so neither exists alone."""
        pending = {
            "ConditionExpression": "#status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item({":pending": "pending"}),
        }
        try:
            if grant is None:
                self.client.put_item(TableName=self._table, Item=to_item(_request_record(request)), **pending)
                return
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table, "Item": to_item(_request_record(request)), **pending}},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_item(_grant_record(grant)),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except Exception as error:
            if is_conditional_failure(error):
                raise Conflict(f"Access request {request.request_id} was already decided") from None
            raise

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
