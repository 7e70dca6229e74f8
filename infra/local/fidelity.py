"""Where moto differs from AWS in a way CityShare relies on, the embedded stack restores AWS's behaviour."""

from __future__ import annotations

import json
import threading
from typing import Any

_lock = threading.RLock()  # moto's transactions call its own put_item and update_item
_patched = False


class WrittenItems:
    """The DynamoDB items written since they were last taken (which table, which key): the embedded
    stack's snapshot journals their new state instead of pickling whole tables on every write."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str, str, str]] = set()
        self.kept = False  # only a stack that keeps its state takes them: else nothing is noted

    def note(self, backend: Any, table_name: str, key: dict[str, Any]) -> None:
        if self.kept:
            self._keys.add((backend.account_id, backend.region_name, table_name, json.dumps(key, sort_keys=True)))

    def take(self) -> set[tuple[str, str, str, str]]:
        with _lock:
            taken, self._keys = self._keys, set()
            return taken


written_items = WrittenItems()


def make_conditional_writes_atomic() -> None:
    """DynamoDB evaluates a write's condition and applies it atomically; moto's backend takes no
    lock, so two threads can both pass `attribute_not_exists` and the second overwrites the first.
    The nonce store and the audit chain depend on that atomicity, so serialise moto's requests (and
    note which items each write wrote). Transactions undo their own items when cancelled rather than
    copying whole tables first (see `_undo_by_item`)."""
    global _patched
    if _patched:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    _undo_by_item(DynamoDBBackend)
    # A read turns the stored item into its answer after the backend returned it, iterating the
    # item's attributes while a write on another thread may be changing them ("dictionary changed
    # size during iteration"): each request, its answer included, runs whole under the same lock.
    handle = DynamoHandler.call_action

    def one_at_a_time(self: Any) -> Any:
        with _lock:
            return handle(self)

    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign]

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            with _lock:
                try:
                    return _original(self, *args, **kwargs)
                finally:
                    _note_items(self, _name, args, kwargs)

        setattr(DynamoDBBackend, name, locked)
    _patched = True


def _undo_by_item(backend_class: Any) -> None:
    """moto makes a transaction cancellable by deep-copying every table it names, once per item named:
    with the audit chain and the nonces in those tables, each transaction cost grew with everything
    ever written (an audit append took longer with every request the stack had served, a storm's
    100-alert transactions copied the alerts table 100 times each). DynamoDB's cost is per item, and
    so is this: the items a transaction names are remembered before it runs and put back if it is
    cancelled; the tables themselves are no longer copied."""
    import copy as copying

    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class TablesNotCopied:
        """moto's module's `copy`, except that a whole table "copied" is the table itself."""

        copy = staticmethod(copying.copy)

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            return value if isinstance(value, Table) else copying.deepcopy(value, memo)

    models.copy = TablesNotCopied  # type: ignore[attr-defined,assignment]
    original = backend_class.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        before: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            for kind, body in entry.items():
                table = self.tables.get(body.get("TableName")) if isinstance(body, dict) else None
                if kind == "ConditionCheck" or table is None:
                    continue
                attributes = body.get("Key") or body.get("Item") or {}
                try:
                    hash_value = DynamoType(attributes[table.hash_key_attr])
                    range_value = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
                except KeyError:
                    continue  # moto refuses the malformed item before writing it
                before.append((table, hash_value, range_value, copying.deepcopy(table.get_item(hash_value, range_value))))
        try:
            return original(self, transact_items, *args, **kwargs)
        except Exception:
            for table, hash_value, range_value, item in reversed(before):
                if item is None:
                    table.delete_item(hash_value, range_value)
                elif range_value is not None:
                    table.items[hash_value][range_value] = item
                else:
                    table.items[hash_value] = item
            raise

    backend_class.transact_write_items = transact_write_items


def _note_items(backend: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The keys a write named (a failed condition wrote nothing: noting it costs a record, no more)."""
    if method == "transact_write_items":
        for entry in kwargs.get("transact_items", args[0] if args else []):
            for kind, body in entry.items():
                if kind != "ConditionCheck" and isinstance(body, dict):
                    _note_key(backend, body["TableName"], body.get("Key") or body.get("Item") or {})
        return
    table_name = kwargs.get("table_name", args[0] if args else "")
    raw = kwargs.get("item_attrs" if method == "put_item" else "key", args[1] if len(args) > 1 else {})
    _note_key(backend, table_name, raw)


def _note_key(backend: Any, table_name: str, attributes: dict[str, Any]) -> None:
    table = backend.tables.get(table_name)
    if table is None:
        return
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if all(name in attributes for name in names):
        written_items.note(backend, table_name, {name: attributes[name] for name in names})


def expire_items(dynamodb: Any, tables: dict[str, str], now: float) -> int:
    """DynamoDB's time to live, which moto does not run: items whose TTL attribute (epoch seconds) has
    passed are deleted, as AWS deletes them in the background. `tables`: table name -> attribute."""
    deleted = 0
    for table_name, attribute in tables.items():
        key_names = [k["AttributeName"] for k in dynamodb.describe_table(TableName=table_name)["Table"]["KeySchema"]]
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table_name,
            FilterExpression="#ttl < :now",
            ExpressionAttributeNames={"#ttl": attribute},
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
        )
        for page in pages:
            for item in page.get("Items", []):
                dynamodb.delete_item(TableName=table_name, Key={k: item[k] for k in key_names})
                deleted += 1
    return deleted
