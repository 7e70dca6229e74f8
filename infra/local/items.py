"""DynamoDB items of the embedded stack on disk: a base file holding every item at one save, and a
journal of the items written by each save since (their state after the write, or their deletion).

The snapshot of moto's state holds the tables without their items, so a write costs what it wrote,
not the size of the tables it touched (the audit chains and the nonces grow with every request).
Each journal record carries the number of the save that wrote it; the snapshot names the last save
it belongs with, so a record written by a save that died before its snapshot was renamed into place
is never replayed. When the journal outgrows the base, the next save writes a new base.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

Record = tuple[str, str, str, str, Any]  # account, region, table, key (JSON), the item or None (deleted)
_LENGTH = struct.Struct(">Q")
MIN_COMPACTION_BYTES = 8 * 1024**2


def _tables() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends


def _key(table: Any, key_json: str) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    raw = json.loads(key_json)
    hash_key = DynamoType(raw[table.hash_key_attr])
    range_key = DynamoType(raw[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key


def current_records(keys: set[tuple[str, str, str, str]]) -> list[Record]:
    """The state now of each written item (to be called while no AWS call runs)."""
    records = []
    for account, region, table_name, key_json in keys:
        table = _tables()[account][region].tables.get(table_name)
        if table is None:
            continue  # deleted with its table: the snapshot no longer holds the table
        hash_key, range_key = _key(table, key_json)
        records.append((account, region, table_name, key_json, table.get_item(hash_key, range_key)))
    return records


def every_item() -> dict[tuple[str, str, str], Any]:
    """Every table's items, by account, region and table (to be called while no AWS call runs)."""
    found = {}
    for account, regions in _tables().items():
        for region, backend in dict(regions).items():
            for table_name, table in backend.tables.items():
                found[(account, region, table_name)] = table.items
    return found


def base_payload() -> bytes:
    """Every item, pickled (items are changed in place by later writes: pickled while none runs)."""
    return pickle.dumps(every_item(), protocol=pickle.HIGHEST_PROTOCOL)


def journal_payload(save: int, keys: set[tuple[str, str, str, str]]) -> bytes:
    return pickle.dumps((save, current_records(keys)), protocol=pickle.HIGHEST_PROTOCOL)


def apply(record: Record) -> None:
    account, region, table_name, key_json, item = record
    table = _tables()[account][region].tables.get(table_name)
    if table is None:
        return
    hash_key, range_key = _key(table, key_json)
    if item is None:
        if range_key is not None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items.pop(hash_key, None)
    elif range_key is not None:
        table.items[hash_key][range_key] = item
    else:
        table.items[hash_key] = item


class ItemStore:
    """The base and journal files in `folder`, for the snapshot that names `base` and `upto`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.base = 0  # the save whose base file holds every item
        self.upto = 0  # the last save whose records count

    def _base_file(self, base: int) -> Path:
        return self.folder / f"items-base-{base}.pickle"

    def _journal_file(self, base: int) -> Path:
        return self.folder / f"items-journal-{base}.log"

    def needs_base(self) -> bool:
        if self.base == 0:
            return True
        journal = self._journal_file(self.base)
        size = journal.stat().st_size if journal.exists() else 0
        return size > max(MIN_COMPACTION_BYTES, self._base_file(self.base).stat().st_size)

    def write_base(self, save: int, payload: bytes) -> None:
        """`payload`: `base_payload()`, taken while no AWS call ran."""
        _write_whole(self._base_file(save), payload)

    def append(self, payload: bytes) -> None:
        """`payload`: `journal_payload()`, taken while no AWS call ran."""
        with self._journal_file(self.base).open("ab") as journal:
            journal.write(_LENGTH.pack(len(payload)) + payload)
            journal.flush()
            os.fsync(journal.fileno())

    def committed(self, base: int, upto: int) -> None:
        """The snapshot naming (base, upto) is in place: older bases and journals are dropped."""
        self.base, self.upto = base, upto
        for path in self.folder.glob("items-*"):
            if path.name not in (self._base_file(base).name, self._journal_file(base).name):
                path.unlink(missing_ok=True)

    def restore(self, base: int, upto: int) -> None:
        """Every item of the base, then the journal's records up to `upto`; a journal's tail beyond
        it (a save that died before its snapshot) is cut off, so it is never replayed later."""
        items = pickle.loads(self._base_file(base).read_bytes())  # noqa: S301 - the stack's own, owner-only
        for (account, region, table_name), table_items in items.items():
            table = _tables()[account][region].tables.get(table_name)
            if table is not None:
                table.items = defaultdict(dict, table_items)
        journal = self._journal_file(base)
        kept = 0
        if journal.exists():
            data = journal.read_bytes()
            offset = 0
            while offset + _LENGTH.size <= len(data):
                (length,) = _LENGTH.unpack_from(data, offset)
                end = offset + _LENGTH.size + length
                if end > len(data):
                    break  # a record cut by a crash
                save, records = pickle.loads(data[offset + _LENGTH.size : end])  # noqa: S301
                if save > upto:
                    break
                for record in records:
                    apply(record)
                offset = kept = end
            with journal.open("r+b") as file:
                file.truncate(kept)
        self.base, self.upto = base, upto


def _write_whole(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
