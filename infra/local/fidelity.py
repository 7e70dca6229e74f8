"""Where moto differs from AWS in a way CityShare relies on, the embedded stack restores AWS's behaviour."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()  # moto's transactions call its own put_item and update_item
_patched = False


def make_conditional_writes_atomic() -> None:
    """DynamoDB evaluates a write's condition and applies it atomically; moto's backend takes no
    lock, so two threads can both pass `attribute_not_exists` and the second overwrites the first.
    The nonce store and the audit chain depend on that atomicity, so serialise moto's writes."""
    global _patched
    if _patched:
        return
    from moto.dynamodb.models import DynamoDBBackend

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    _patched = True
