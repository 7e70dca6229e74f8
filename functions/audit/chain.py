"""An append-only, hash-chained audit log in DynamoDB.

Each chain (a department, or `platform` for authentication failures and directory changes) is a
partition whose sort key is a gapless sequence number. An entry stores the hash of its predecessor
and its own hash over a canonical JSON form, so a removed, altered or reordered entry breaks the
chain. Appends are conditional on the sequence number being free, so two writers cannot fork it:
the loser re-reads the head and tries again.

A warm process remembers the head it last wrote or read, so a steady append is one conditional
PutItem; the head is read again only when another writer got there first. That is safe because
positions fill in order and entries never change: if position n+1 is free, entry n is the head.

Under at-least-once delivery an entry must not be written twice:
- a put whose answer was lost (applied, then retried and refused by its own condition) is
  recognised by its hash at the position it took, not taken for contention and appended again;
- `once=<key>` records what a background step did exactly once, whatever the redeliveries: the
  entry and a marker `once#<chain>#<key>` are written in one transaction, and a second append with
  the same key finds the marker and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import Conflict, PreconditionFailed
from functions.core.model import Model
from functions.core.observability import record_metric

GENESIS_HASH = "0" * 64
_MAX_APPEND_ATTEMPTS = 25
# DynamoDB writes at most 100 items in a transaction.
MAX_ENTRIES_A_WRITE = 100


class AuditEvent(Model):
    """What happened; the chain adds position and hashes."""

    actor_department: str
    actor_principal: str
    action: str
    resource: str
    decision: str  # allow | deny | error
    reason: str = ""
    policies: list[str] = Field(default_factory=list)
    request_id: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class AuditEntry(AuditEvent):
    chain: str
    seq: int
    at: str
    prev_hash: str
    hash: str


def entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every field but `hash` (the SDK's verifier does the same)."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AuditLog(DynamoTable):
    def __init__(self, table_name: str, client: Any = None) -> None:
        super().__init__(table_name, client)
        self._heads: dict[str, tuple[int, str]] = {}  # chain -> (seq, hash) last seen by this process

    def append(
        self, chain: str, event: AuditEvent, once: str | None = None, guard: dict[str, Any] | None = None
    ) -> AuditEntry | None:
        """Append `event` to `chain`. With `once`, None when an entry with that key was appended before.
        With `guard` (a TransactWriteItems ConditionCheck on another item), the entry is written only
        while that condition holds, in one transaction: PreconditionFailed otherwise, nothing written."""
        for attempt in range(_MAX_APPEND_ATTEMPTS):
            if attempt > 1:
                # Jittered backoff so contending writers stop colliding on the same position.
                time.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
            fields = self._following(chain, self._known_head(chain, attempt), event)
            record = _record(fields)
            try:
                if guard is not None:
                    self._put_guarded(record, guard)
                elif once is None:
                    self.client.put_item(
                        TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(seq)"
                    )
                elif not self._put_once(record, chain, once):
                    return None  # recorded by an earlier delivery
            except Exception as error:
                if not is_conditional_failure(error):
                    record_metric("AuditWriteFailures")
                    raise
                if not self._is_ours(chain, fields):
                    continue  # another writer took this position: re-read the head
            self._heads[chain] = (fields["seq"], fields["hash"])
            return AuditEntry.model_validate(fields)
        record_metric("AuditWriteFailures")
        raise Conflict("The audit log is too busy to append; try again")

    def append_many(self, chain: str, events: list[AuditEvent]) -> list[AuditEntry]:
        """Append `events` to `chain` as consecutive entries, each 100 (DynamoDB's most in a transaction)
        written together, all or none: a request that reads several datasets of one department
        records each read in one write."""
        if len(events) <= 1:
            return [entry for event in events if (entry := self.append(chain, event)) is not None]
        written = []
        for start in range(0, len(events), MAX_ENTRIES_A_WRITE):
            written.extend(self._append_together(chain, events[start : start + MAX_ENTRIES_A_WRITE]))
        return written

    def _append_together(self, chain: str, events: list[AuditEvent]) -> list[AuditEntry]:
        for attempt in range(_MAX_APPEND_ATTEMPTS):
            if attempt > 1:
                time.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
            head = self._known_head(chain, attempt)
            entries = []
            for event in events:
                entries.append(self._following(chain, head, event))
                head = (entries[-1]["seq"], entries[-1]["hash"])
            puts = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_item(_record(f)),
                        "ConditionExpression": "attribute_not_exists(seq)",
                    }
                }
                for f in entries
            ]
            try:
                self.client.transact_write_items(TransactItems=puts)
            except Exception as error:
                if not is_conditional_failure(error):
                    record_metric("AuditWriteFailures")
                    raise
                if not self._is_ours(chain, entries[0]):
                    continue  # another writer took these positions: re-read the head
            self._heads[chain] = head
            return [AuditEntry.model_validate(f) for f in entries]
        record_metric("AuditWriteFailures")
        raise Conflict("The audit log is too busy to append; try again")

    def _known_head(self, chain: str, attempt: int) -> tuple[int, str]:
        """(seq, hash) of the chain's last entry: remembered on a first attempt, else read."""
        head = self._heads.get(chain) if attempt == 0 else None
        if head is None:
            latest = self._head(chain)
            head = (latest.seq, latest.hash) if latest else (0, GENESIS_HASH)
        return head

    @staticmethod
    def _following(chain: str, head: tuple[int, str], event: AuditEvent) -> dict[str, Any]:
        """The fields of `event` as the entry after `head`, hashed."""
        fields: dict[str, Any] = event.model_dump()
        fields.update(chain=chain, seq=head[0] + 1, at=datetime.now(UTC).isoformat(timespec="microseconds"), prev_hash=head[1])
        fields["hash"] = entry_hash(fields)
        return fields

    def _put_guarded(self, record: dict[str, Any], guard: dict[str, Any]) -> None:
        """The entry, if its position is free and `guard`'s condition holds (PreconditionFailed if not)."""
        put = {"Put": {"TableName": self._table, "Item": to_item(record), "ConditionExpression": "attribute_not_exists(seq)"}}
        try:
            self.client.transact_write_items(TransactItems=[put, guard])
        except Exception as error:
            reasons = [r.get("Code") for r in (getattr(error, "response", None) or {}).get("CancellationReasons", [])]
            if len(reasons) == 2 and reasons[0] in (None, "None") and reasons[1] == "ConditionalCheckFailed":
                raise PreconditionFailed("the condition the entry was written under no longer holds") from None
            raise

    def _put_once(self, record: dict[str, Any], chain: str, once: str) -> bool:
        """The entry and its once-marker together; False when the marker was there already."""
        marker = {"chain": once_marker(chain, once), "seq": 0, "entry": record["seq"], "hash": record["hash"]}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table, "Item": to_item(item), "ConditionExpression": "attribute_not_exists(seq)"}}
                    for item in (record, marker)
                ]
            )
        except Exception as error:
            reasons = [r.get("Code") for r in (getattr(error, "response", None) or {}).get("CancellationReasons", [])]
            if len(reasons) == 2 and reasons[1] == "ConditionalCheckFailed":
                return self._is_ours(chain, record)  # the marker: ours if the answer was lost, else another's
            raise
        return True

    def _is_ours(self, chain: str, fields: dict[str, Any]) -> bool:
        """Whether the entry at `fields`' position is the one these fields describe (a write that was
        applied, but whose answer was lost and whose retry was refused by its own condition)."""
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"chain": chain, "seq": fields["seq"]}), ConsistentRead=True
        )
        return bool(response.get("Item")) and from_item(response["Item"]).get("hash") == fields["hash"]

    def read(self, chain: str, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        response = self.client.query(
            TableName=self._table,
            KeyConditionExpression="chain = :chain AND seq > :after",
            ExpressionAttributeValues=to_item({":chain": chain, ":after": after_seq}),
            Limit=limit,
            ConsistentRead=True,
        )
        return [_entry(item) for item in response["Items"]]

    def _head(self, chain: str) -> AuditEntry | None:
        response = self.client.query(
            TableName=self._table,
            KeyConditionExpression="chain = :chain",
            ExpressionAttributeValues=to_item({":chain": chain}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response["Items"]
        return _entry(items[0]) if items else None


def once_marker(chain: str, key: str) -> str:
    """The partition of the marker that makes `key`'s entry in `chain` exactly-once (never a chain:
    chains are department ids, which hold no `#`)."""
    return f"once#{chain}#{key}"


def _record(fields: dict[str, Any]) -> dict[str, Any]:
    """An entry as stored: its details as canonical JSON text."""
    return dict(fields, details=json.dumps(fields["details"], sort_keys=True))


def _entry(item: dict[str, Any]) -> AuditEntry:
    record = from_item(item)
    record["details"] = json.loads(record.get("details") or "{}")
    record.setdefault("policies", [])
    return AuditEntry.model_validate(record)
