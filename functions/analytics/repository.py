"""The analytics table: what departments asked to happen when data lands.

  DATASET#<id> / RULE#<rule id>                 an alert rule on the dataset
  DATASET#<id> / SUB#<department>#<sub id>      a subscription to the dataset
  TAG#<tag>    / SUB#<department>#<sub id>      a subscription to every dataset carrying the tag
  DATASET#<id> / DERIVED#<output>               the dataset is an input of a derived dataset
  DERIVED#<output> / DEFINITION                 the derived dataset's definition
  DATASET#<id> / ALERT#<version>#<alert id>     an alert raised (written once: dedupes redeliveries)
  ANNOUNCE     / <dataset>#<version>#<rule id>  a rule's alerts on a version, stored, not yet announced

The `by_department` index (department, sk) lists a department's rules, subscriptions and derived
dataset definitions.
"""

from __future__ import annotations

import json
import time
from typing import Any

from functions.analytics.models import Alert, AlertRule, DerivedDataset, Subscription
from functions.core import idempotency
from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import NotFound

ANNOUNCE = "ANNOUNCE"
# Derived datasets defined and not built yet (one item each, deleted once the first build started).
FIRST_BUILD = "FIRST-BUILD"


class AnalyticsRepository(DynamoTable):
    # -- rules
    def put_rule(self, rule: AlertRule) -> None:
        record = dict(rule.model_dump(exclude_none=True, mode="json"), pk=f"DATASET#{rule.dataset_id}", sk=f"RULE#{rule.rule_id}")
        record["department"] = rule.owner
        record["definition"] = rule.model_dump_json()
        self._put_new(_slim(record), rule.model_dump_json())

    def rules_of(self, dataset_id: str) -> list[AlertRule]:
        return [AlertRule.model_validate_json(r["definition"]) for r in self._query(f"DATASET#{dataset_id}", "RULE#")]

    def delete_rule(self, rule: AlertRule) -> None:
        self.client.delete_item(
            TableName=self._table, Key=to_item({"pk": f"DATASET#{rule.dataset_id}", "sk": f"RULE#{rule.rule_id}"})
        )

    # -- subscriptions
    def put_subscription(self, subscription: Subscription, secret: str | None, answer: str = "") -> None:
        """`answer`: what the call answers with, recorded under its idempotency key with the write."""
        subject = f"DATASET#{subscription.dataset_id}" if subscription.dataset_id else f"TAG#{subscription.tag}"
        record = {
            "pk": subject,
            "sk": f"SUB#{subscription.department}#{subscription.subscription_id}",
            "department": subscription.department,
            "definition": subscription.model_dump_json(),
            "webhook_secret": secret,
        }
        self._put_new(record, answer or subscription.model_dump_json())

    def _put_new(self, record: dict[str, Any], answer: str) -> None:
        """Write a new item; under an idempotency key, in one transaction with the answer, so a call
        retried after its answer was lost (or its function died) finds it committed
        (AlreadyCommitted) instead of writing a second rule or subscription."""
        keyed = idempotency.current.get()
        if keyed is None:
            self.client.put_item(TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)")
            return
        put = {"Put": {"TableName": self._table, "Item": to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}}
        try:
            self.client.transact_write_items(TransactItems=[put, keyed.commit_item(answer)])
        except Exception as error:
            committed = keyed.committed() if is_conditional_failure(error) else None
            if committed is not None:
                raise idempotency.AlreadyCommitted(committed) from None
            raise

    def subscriptions_to(self, dataset_id: str, tags: list[str]) -> list[tuple[Subscription, str | None]]:
        """Subscriptions to the dataset and to any of its tags, with their webhook secrets."""
        records = self._query(f"DATASET#{dataset_id}", "SUB#")
        for tag in sorted(set(tags)):
            records.extend(self._query(f"TAG#{tag}", "SUB#"))
        return [(Subscription.model_validate_json(r["definition"]), r.get("webhook_secret")) for r in records]

    def subscriptions_of(self, department: str) -> list[Subscription]:
        return [Subscription.model_validate_json(r["definition"]) for r in self._by_department(department, "SUB#")]

    def delete_subscription(self, department: str, subscription_id: str) -> Subscription:
        for record in self._by_department(department, f"SUB#{department}#{subscription_id}"):
            self.client.delete_item(TableName=self._table, Key=to_item({"pk": record["pk"], "sk": record["sk"]}))
            return Subscription.model_validate_json(record["definition"])
        raise NotFound(f"Department {department} has no subscription {subscription_id}")

    # -- derived datasets
    def put_derived(self, derived: DerivedDataset) -> None:
        """The definition and one edge per input, in one transaction."""
        self.client.transact_write_items(TransactItems=self.derived_items(derived))

    def derived_items(self, derived: DerivedDataset) -> list[dict[str, Any]]:
        """The TransactWriteItems entries that store a definition (to join the dataset's own creation)."""
        definition = {
            "pk": f"DERIVED#{derived.dataset_id}",
            "sk": "DEFINITION",
            "department": derived.owner,  # listed by the by_department index (the city picture's indicators)
            "definition": derived.model_dump_json(),
        }
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": to_item(definition), "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        for source in derived.inputs:
            edge = {"pk": f"DATASET#{source}", "sk": f"DERIVED#{derived.dataset_id}", "owner": derived.owner}
            items.append({"Put": {"TableName": self._table, "Item": to_item(edge)}})
        # Its first build is owed: the triggers' sweep builds it from its inputs' latest versions.
        items.append({"Put": {"TableName": self._table, "Item": to_item({"pk": FIRST_BUILD, "sk": derived.dataset_id})}})
        return items

    def first_builds_owed(self) -> list[str]:
        return [str(r["sk"]) for r in self._query(FIRST_BUILD, "")]

    def first_build_done(self, dataset_id: str) -> None:
        self.client.delete_item(TableName=self._table, Key=to_item({"pk": FIRST_BUILD, "sk": dataset_id}))

    def derived(self, dataset_id: str) -> DerivedDataset | None:
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": f"DERIVED#{dataset_id}", "sk": "DEFINITION"}), ConsistentRead=True
        )
        return DerivedDataset.model_validate_json(from_item(response["Item"])["definition"]) if "Item" in response else None

    def derived_of(self, department: str) -> list[DerivedDataset]:
        """The derived datasets the department defined (one query of the by_department index)."""
        return [DerivedDataset.model_validate_json(r["definition"]) for r in self._by_department(department, "DEFINITION")]

    def downstream(self, dataset_id: str) -> list[str]:
        return [str(r["sk"]).removeprefix("DERIVED#") for r in self._query(f"DATASET#{dataset_id}", "DERIVED#")]

    # -- alerts
    def put_alert(self, alert: Alert) -> bool:
        """False when this alert was already raised (a redelivered event)."""
        try:
            self.client.put_item(
                TableName=self._table, Item=to_item(_alert_record(alert)), ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def put_alerts(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts not raised before, stored: 100 per transaction when all are new (the first
        delivery), one by one for a chunk that holds any already raised (a redelivery)."""
        new: list[Alert] = []
        for start in range(0, len(alerts), 100):
            chunk = alerts[start : start + 100]
            items = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_item(_alert_record(alert)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for alert in chunk
            ]
            try:
                self.client.transact_write_items(TransactItems=items)
                new.extend(chunk)
            except Exception as error:
                if not is_conditional_failure(error):
                    raise
                new.extend(alert for alert in chunk if self.put_alert(alert))
        return new

    def alerts_of(self, dataset_id: str, version: int | None = None) -> list[Alert]:
        prefix = "ALERT#" if version is None else f"ALERT#{version:08d}#"
        return [Alert.model_validate_json(r["alert"]) for r in self._query(f"DATASET#{dataset_id}", prefix)]

    # -- announcements of alerts: a marker from when a rule's alerts are stored until they are announced
    def announcing(self, dataset_id: str, version: int, rule_id: str, firings: int) -> None:
        marker = {"pk": ANNOUNCE, "sk": f"{dataset_id}#{version}#{rule_id}", "since": int(time.time()), "firings": firings}
        self.client.put_item(TableName=self._table, Item=to_item(marker))

    def is_announcing(self, dataset_id: str, version: int, rule_id: str) -> bool:
        found = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": ANNOUNCE, "sk": f"{dataset_id}#{version}#{rule_id}"}), ConsistentRead=True
        )
        return "Item" in found

    def announced(self, dataset_id: str, version: int, rule_id: str) -> None:
        self.client.delete_item(TableName=self._table, Key=to_item({"pk": ANNOUNCE, "sk": f"{dataset_id}#{version}#{rule_id}"}))

    def unannounced(self, older_than_seconds: int) -> list[tuple[str, int, str, int, int]]:
        """(dataset, version, rule, firings, marked at) of alerts marked that long ago and still not announced."""
        cutoff = int(time.time()) - older_than_seconds
        found = []
        response = self.client.query(
            TableName=self._table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues=to_item({":pk": ANNOUNCE})
        )
        for record in map(from_item, response["Items"]):
            if int(record["since"]) <= cutoff:
                dataset_id, version, rule_id = str(record["sk"]).split("#")
                found.append((dataset_id, int(version), rule_id, int(record.get("firings", 0)), int(record["since"])))
        return found

    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        """The partition's items whose sort key starts with `prefix` (all of them for ""; DynamoDB
        refuses an empty string in a key condition)."""
        records: list[dict[str, Any]] = []
        condition = "pk = :pk AND begins_with(sk, :prefix)" if prefix else "pk = :pk"
        values = {":pk": pk, ":prefix": prefix} if prefix else {":pk": pk}
        for page in self.client.get_paginator("query").paginate(
            TableName=self._table, KeyConditionExpression=condition, ExpressionAttributeValues=to_item(values)
        ):
            records.extend(from_item(item) for item in page["Items"])
        return records

    def _by_department(self, department: str, prefix: str) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=self._table,
            IndexName="by_department",
            KeyConditionExpression="department = :d AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":d": department, ":prefix": prefix}),
        )
        return [from_item(item) for item in response["Items"]]


def _alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "pk": f"DATASET#{alert.dataset_id}",
        "sk": f"ALERT#{alert.version:08d}#{alert.alert_id}",
        "alert": alert.model_dump_json(),
    }


def _slim(record: dict[str, Any]) -> dict[str, Any]:
    """Only the keys, the index attribute and the definition as JSON text (the model is the truth)."""
    return {k: record[k] for k in ("pk", "sk", "department", "definition")} | {"name": json.loads(record["definition"])["name"]}
