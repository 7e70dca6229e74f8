"""The directory table: departments, their principals (with roles) and the principals' public keys.

One partition per department: `DEPT#<id>` holds the department (`DEPARTMENT`), its principals
(`PRINCIPAL#<id>`) and keys (`KEY#<kid>`), so verifying a request is one BatchGetItem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import AlreadyExists, DepartmentNotReady, NotFound
from functions.identity.keys import key_fingerprint
from functions.identity.models import Department, Principal, PublicKey

DEPARTMENT_INDEX = "by_kind"


def _pk(department_id: str) -> str:
    return f"DEPT#{department_id}"


@dataclass(frozen=True)
class Signer:
    """What the directory knows about the signer of a request (each part None when unknown)."""

    department: Department | None
    principal: Principal | None
    key: PublicKey | None


class KeyHeldElsewhere(AlreadyExists):
    """The public key is registered to another principal already."""


class DirectoryRepository(DynamoTable):
    # -- departments
    def create_department(self, department: Department) -> None:
        record = department.model_dump()
        record.update(pk=_pk(department.department_id), sk="DEPARTMENT", kind="department")
        self._put_new(record, f"department {department.department_id}")

    def department_key(self, department_id: str) -> dict[str, Any]:
        """A department's key, for a BatchGetItem beside other tables' items."""
        return to_item({"pk": _pk(department_id), "sk": "DEPARTMENT"})

    def department_from(self, item: dict[str, Any]) -> Department:
        """A department from its item as DynamoDB returned it."""
        return Department.model_validate(_strip(from_item(item)))

    def get_department(self, department_id: str) -> Department | None:
        record = self._get(_pk(department_id), "DEPARTMENT")
        return Department.model_validate(_strip(record)) if record else None

    def list_departments(self) -> list[Department]:
        records = self._query_all(
            IndexName=DEPARTMENT_INDEX,
            KeyConditionExpression="kind = :kind",
            ExpressionAttributeValues=to_item({":kind": "department"}),
        )
        return [Department.model_validate(_strip(r)) for r in records]

    def set_department_status(self, department_id: str, status: str) -> Department:
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=to_item({"pk": _pk(department_id), "sk": "DEPARTMENT"}),
                UpdateExpression="SET #status = :status",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":status": status}),
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise NotFound(f"No department {department_id}") from None
        return Department.model_validate(_strip(from_item(response["Attributes"])))

    def record_resources(self, department_id: str, data_key: str, usage_key: str | None) -> None:
        """The provisioner's record of a department's resources (a key, once set, is never replaced)."""
        values: dict[str, Any] = {":key": data_key}
        update = "SET data_key = if_not_exists(data_key, :key)"
        if usage_key:
            update += ", usage_key = if_not_exists(usage_key, :usage)"
            values[":usage"] = usage_key
        self.client.update_item(
            TableName=self._table,
            Key=to_item({"pk": _pk(department_id), "sk": "DEPARTMENT"}),
            UpdateExpression=update,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item(values),
        )

    # -- principals
    def put_principal(self, principal: Principal) -> None:
        record = principal.model_dump()
        record.update(pk=_pk(principal.department_id), sk=f"PRINCIPAL#{principal.principal_id}")
        self.client.put_item(TableName=self._table, Item=to_item(record))

    def get_principal(self, department_id: str, principal_id: str) -> Principal | None:
        record = self._get(_pk(department_id), f"PRINCIPAL#{principal_id}")
        return Principal.model_validate(_strip(record)) if record else None

    def set_principal_status(self, department_id: str, principal_id: str, status: str) -> Principal:
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=to_item({"pk": _pk(department_id), "sk": f"PRINCIPAL#{principal_id}"}),
                UpdateExpression="SET #status = :status",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":status": status}),
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise NotFound(f"No principal {principal_id} in department {department_id}") from None
        return Principal.model_validate(_strip(from_item(response["Attributes"])))

    def list_principals(self, department_id: str) -> list[Principal]:
        return [Principal.model_validate(_strip(r)) for r in self._members(department_id, "PRINCIPAL#")]

    # -- keys
    def add_key(self, key: PublicKey) -> None:
        """The key, and beside it in one transaction the key's holder (`HOLDER#<fingerprint of the
        key itself>`, not of its key id, which a caller may choose): a public key is one principal's,
        so whoever holds its private half signs as that principal alone, never as another
        department's too. Refused (AlreadyExists) when the key is registered already; KeyHeldElsewhere
        when another principal holds it."""
        record = key.model_dump()
        record.update(pk=_pk(key.department_id), sk=f"KEY#{key.kid}", jwk=json.dumps(key.jwk))
        holder_pk = f"HOLDER#{key_fingerprint(key.jwk)}"
        holder = {"pk": holder_pk, "sk": "HOLDER", "department_id": key.department_id, "principal_id": key.principal_id}
        puts = [
            {"Put": {"TableName": self._table, "Item": to_item(item), "ConditionExpression": "attribute_not_exists(pk)"}}
            for item in (record, holder)
        ]
        try:
            self.client.transact_write_items(TransactItems=puts)
        except Exception as error:
            reasons = [r.get("Code") for r in (getattr(error, "response", None) or {}).get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise AlreadyExists(f"The key {key.kid} already exists") from None
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                found = self._get(holder_pk, "HOLDER") or {}
                raise KeyHeldElsewhere(
                    f"This public key is registered to {found.get('department_id')}/{found.get('principal_id')} already: "
                    "each principal signs with a key of its own"
                ) from None
            raise

    def retire_key(self, department_id: str, kid: str) -> None:
        try:
            self.client.update_item(
                TableName=self._table,
                Key=to_item({"pk": _pk(department_id), "sk": f"KEY#{kid}"}),
                UpdateExpression="SET #status = :retired",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":retired": "retired"}),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise NotFound(f"No key {kid} in department {department_id}") from None

    def list_keys(self, department_id: str) -> list[PublicKey]:
        return [_key(r) for r in self._members(department_id, "KEY#")]

    def find_signer(self, department_id: str, principal_id: str, kid: str) -> Signer:
        """Department, principal and key of a request in one BatchGetItem (one round trip)."""
        pk = _pk(department_id)
        keys = [{"pk": pk, "sk": "DEPARTMENT"}, {"pk": pk, "sk": f"PRINCIPAL#{principal_id}"}, {"pk": pk, "sk": f"KEY#{kid}"}]
        request = {self._table: {"Keys": [to_item(k) for k in keys], "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self._table, []):
                record = from_item(item)
                found[record["sk"].split("#", 1)[0]] = record
            request = response.get("UnprocessedKeys") or {}
        department = found.get("DEPARTMENT")
        principal = found.get("PRINCIPAL")
        key = found.get("KEY")
        return Signer(
            department=Department.model_validate(_strip(department)) if department else None,
            principal=Principal.model_validate(_strip(principal)) if principal else None,
            key=_key(key) if key else None,
        )

    def member(self, department_id: str, principal_id: str) -> Signer:
        """A department, one of its principals and that principal's keys (one Query of the partition);
        `key` is one of its active keys, if it has any."""
        records = self._query_all(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues=to_item({":pk": _pk(department_id)})
        )
        department = next((r for r in records if r["sk"] == "DEPARTMENT"), None)
        principal = next((r for r in records if r["sk"] == f"PRINCIPAL#{principal_id}"), None)
        keys = [_key(r) for r in records if str(r["sk"]).startswith("KEY#")]
        active = [k for k in keys if k.principal_id == principal_id and k.status == "active"]
        return Signer(
            department=Department.model_validate(_strip(department)) if department else None,
            principal=Principal.model_validate(_strip(principal)) if principal else None,
            key=active[0] if active else None,
        )

    # -- plumbing
    def _put_new(self, record: dict[str, Any], what: str) -> None:
        try:
            self.client.put_item(TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)")
        except Exception as error:
            if is_conditional_failure(error):
                raise AlreadyExists(f"The {what} already exists") from None
            raise

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self._table, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True)
        return from_item(response["Item"]) if "Item" in response else None

    def _members(self, department_id: str, prefix: str) -> list[dict[str, Any]]:
        return self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": _pk(department_id), ":prefix": prefix}),
        )

    def _query_all(self, **query: Any) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **query):
            records.extend(from_item(item) for item in page["Items"])
        return records


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in {"pk", "sk", "kind"}}


def _key(record: dict[str, Any]) -> PublicKey:
    values = _strip(record)
    values["jwk"] = json.loads(values["jwk"])
    return PublicKey.model_validate(values)


class DepartmentKeys:
    """Each department's KMS key, read from the directory once per process (a key never changes)."""

    def __init__(self, directory: DirectoryRepository) -> None:
        self._directory = directory
        self._known: dict[str, str] = {}

    def key_of(self, department_id: str) -> str:
        if department_id not in self._known:
            department = self._directory.get_department(department_id)
            if department is None or not department.data_key:
                raise DepartmentNotReady(department_id)
            self._known[department_id] = department.data_key
        return self._known[department_id]
