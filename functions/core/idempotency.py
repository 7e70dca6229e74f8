"""Idempotency keys on mutating API calls: a client that retries a call (its answer was lost, the
function died, a 5xx) with the same `Idempotency-Key` gets the first call's answer, not a second
grant or a second batch of records.

A key is held in the idempotency table for a day, scoped to the caller (department and principal),
method and path, and bound to the body's hash:

- `begin` claims it (`in_progress`, leased for as long as the function can run), or finds the
  stored answer (replayed as it was), a call still running (409 `idempotency_in_progress`) or the
  key used with another body (422 `idempotency_key_reused`);
- a domain write that commits in a transaction (a grant, a decision, a revocation) records its
  result under the key *in that same transaction* (`commit_item`): if the function dies after the
  commit and before it answers, the retry finds the result committed and answers with it instead of
  writing again (`AlreadyCommitted`);
- `finish` stores the answer (2xx to 4xx); a 5xx releases the key so a retry runs again.

The key of the request being served is a context variable, set by the HTTP layer around one request
(functions/handlers/http.py) and read by the repositories that write in transactions.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item

HEADER = "Idempotency-Key"
RETENTION_SECONDS = 86_400
MAX_KEY_LENGTH = 200


class AlreadyCommitted(Exception):
    """The change this request asks for was committed by an earlier call with the same key."""

    def __init__(self, result: str) -> None:
        super().__init__("committed by an earlier call with the same idempotency key")
        self.result = result


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Begun:
    outcome: Literal["claimed", "replay", "in_progress", "reused"]
    claim: str = ""
    answer: Answer | None = None


@dataclass(frozen=True)
class IdempotentRequest:
    """The key of the request being served, as the repositories need it."""

    store: IdempotencyStore
    key_id: str
    claim: str

    def commit_item(self, result: str) -> dict[str, Any]:
        return self.store.commit_item(self.key_id, self.claim, result)

    def committed(self) -> str | None:
        return self.store.committed(self.key_id)


current: ContextVar[IdempotentRequest | None] = ContextVar("cityshare_idempotent_request", default=None)


def key_id(department: str, principal: str, method: str, path: str, key: str) -> str:
    scoped = json.dumps([department, principal, method.upper(), path, key], separators=(",", ":"))
    return hashlib.sha256(scoped.encode()).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


class IdempotencyStore(DynamoTable):
    def __init__(self, table_name: str, client: Any = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(table_name, client)
        self._clock = clock

    def begin(self, key_id: str, payload: str, lease_seconds: int) -> Begun:
        now = int(self._clock())
        claim = secrets.token_hex(8)
        record = {
            "id": key_id,
            "status": "in_progress",
            "claim": claim,
            "payload": payload,
            "lease_until": now + lease_seconds,
            "expires_at": now + RETENTION_SECONDS,
        }
        try:
            # New, or a call that died in progress (its lease is over) and committed nothing.
            self.client.put_item(
                TableName=self._table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(id) OR (#status = :in_progress AND lease_until < :now "
                "AND attribute_not_exists(committed) AND payload = :payload)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":in_progress": "in_progress", ":now": now, ":payload": payload}),
            )
            return Begun("claimed", claim)
        except Exception as error:
            if not is_conditional_failure(error) and not self._holds(key_id, claim):
                raise
        found = self.client.get_item(TableName=self._table, Key=to_item({"id": key_id}), ConsistentRead=True).get("Item")
        if found is None:
            return self.begin(key_id, payload, lease_seconds)  # expired between the two calls
        existing = from_item(found)
        if existing.get("claim") == claim:
            return Begun("claimed", claim)  # our own put: applied, its answer lost, its retry refused
        if existing.get("payload") != payload:
            return Begun("reused")
        if existing.get("status") == "done":
            answer = json.loads(str(existing["answer"]))
            return Begun("replay", answer=Answer(int(answer["status"]), dict(answer["headers"]), str(answer["body"])))
        if existing.get("committed") and int(existing.get("lease_until", 0)) < now:
            # Committed by a call that died before answering: this call takes the key over and
            # finds the committed result when it writes (AlreadyCommitted).
            self.client.update_item(
                TableName=self._table,
                Key=to_item({"id": key_id}),
                UpdateExpression="SET claim = :claim, lease_until = :lease",
                ExpressionAttributeValues=to_item({":claim": claim, ":lease": now + lease_seconds}),
            )
            return Begun("claimed", claim)
        return Begun("in_progress")

    def _holds(self, key_id: str, claim: str) -> bool:
        """Whether a claim whose answer was lost was applied (then it is ours)."""
        try:
            found = self.client.get_item(TableName=self._table, Key=to_item({"id": key_id}), ConsistentRead=True).get("Item")
        except Exception:
            return False
        return found is not None and from_item(found).get("claim") == claim

    def commit_item(self, key_id: str, claim: str, result: str) -> dict[str, Any]:
        """The TransactWriteItems entry that records `result` with the change it describes; fails
        the transaction if another call committed under this key."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": to_item({"id": key_id}),
                "UpdateExpression": "SET committed = :result",
                "ConditionExpression": "claim = :claim AND attribute_not_exists(committed)",
                "ExpressionAttributeValues": to_item({":result": result, ":claim": claim}),
            }
        }

    def committed(self, key_id: str) -> str | None:
        found = self.client.get_item(TableName=self._table, Key=to_item({"id": key_id}), ConsistentRead=True).get("Item")
        return str(from_item(found).get("committed")) if found and "committed" in found else None

    def finish(self, key_id: str, claim: str, answer: Answer) -> None:
        self.client.update_item(
            TableName=self._table,
            Key=to_item({"id": key_id}),
            UpdateExpression="SET #status = :done, answer = :answer",
            ConditionExpression="claim = :claim",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=to_item(
                {
                    ":done": "done",
                    ":claim": claim,
                    ":answer": json.dumps({"status": answer.status, "headers": answer.headers, "body": answer.body}),
                }
            ),
        )

    def release(self, key_id: str, claim: str) -> None:
        """A call that failed (5xx) lets go of its key, so a retry runs at once: forgotten if it
        committed nothing, else its lease ends (the retry answers with what was committed)."""
        try:
            self.client.delete_item(
                TableName=self._table,
                Key=to_item({"id": key_id}),
                ConditionExpression="claim = :claim AND attribute_not_exists(committed)",
                ExpressionAttributeValues=to_item({":claim": claim}),
            )
        except Exception as error:
            if not is_conditional_failure(error):
                raise
            self.client.update_item(
                TableName=self._table,
                Key=to_item({"id": key_id}),
                UpdateExpression="SET lease_until = :over",
                ConditionExpression="claim = :claim",
                ExpressionAttributeValues=to_item({":over": 0, ":claim": claim}),
            )
