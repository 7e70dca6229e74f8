"""The catalog table. Datasets are `DATASET#<id>` / `DATASET`; versions join the same partition later.

Read paths are keys or indexes, never scans: `by_owner` (catalog_owner, dataset_id) and `all_datasets`
(a constant `listing` key, dataset_id) for browsing the whole catalog in id order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from functions.catalog.models import Dataset
from functions.core.dynamo import DynamoTable, batch_get, decode_cursor, encode_cursor, from_item, is_conditional_failure, to_item
from functions.core.errors import AlreadyExists, Conflict, InvalidRequest

OWNER_INDEX = "by_owner"
ALL_INDEX = "all_datasets"
_LISTING = "DATASET"
# Only dataset items carry the index keys (uploads and versions in the same partitions must not
# appear in the listings).
_INDEX_KEYS = {OWNER_INDEX: ("catalog_owner", "dataset_id"), ALL_INDEX: ("listing", "dataset_id")}


def _pk(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


@dataclass(frozen=True)
class CatalogQuery:
    owner: str | None = None
    classification: str | None = None
    tag: str | None = None
    text: str | None = None


class CatalogRepository(DynamoTable):
    def create(self, dataset: Dataset, together_with: list[dict[str, Any]] | None = None) -> None:
        """Create the dataset; with `together_with` (TransactWriteItems entries, e.g. a derived
        dataset's definition in another table), all in one transaction: both or neither."""
        put = {"TableName": self._table, "Item": to_item(_record(dataset)), "ConditionExpression": "attribute_not_exists(pk)"}
        try:
            if together_with:
                self.client.transact_write_items(TransactItems=[{"Put": put}, *together_with])
            else:
                self.client.put_item(**put)
        except Exception as error:
            reasons = [r.get("Code") for r in getattr(error, "response", {}).get("CancellationReasons", [])]
            if is_conditional_failure(error) and (not reasons or reasons[0] == "ConditionalCheckFailed"):
                raise AlreadyExists(f"A dataset {dataset.dataset_id} already exists") from None
            raise

    def key(self, dataset_id: str) -> dict[str, Any]:
        """The dataset's key, for a BatchGetItem beside another table's items."""
        return to_item({"pk": _pk(dataset_id), "sk": "DATASET"})

    def from_stored(self, item: dict[str, Any]) -> Dataset:
        """A dataset from its item as DynamoDB returned it."""
        return _dataset(from_item(item))

    def get(self, dataset_id: str) -> Dataset | None:
        response = self.client.get_item(TableName=self._table, Key=self.key(dataset_id), ConsistentRead=True)
        return self.from_stored(response["Item"]) if "Item" in response else None

    def get_many(self, dataset_ids: list[str]) -> dict[str, Dataset]:
        """The datasets that exist of `dataset_ids` (BatchGetItems of 100 keys: core.dynamo.batch_get)."""
        found = batch_get(self.client, {self._table: [self.key(d) for d in dict.fromkeys(dataset_ids)]})
        return {dataset.dataset_id: dataset for dataset in (self.from_stored(item) for item in found[self._table])}

    def update_metadata(self, dataset: Dataset, changed: list[str], expected_revision: int) -> None:
        """Write the changed metadata fields of `dataset` if the stored revision is still
        `expected_revision`; other attributes (the latest version, written by ingest) are untouched."""
        record = _record(dataset)
        names = [*changed, "revision", "updated_at", "search_text"]
        try:
            self.client.update_item(
                TableName=self._table,
                Key=to_item({"pk": record["pk"], "sk": record["sk"]}),
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(names))),
                ConditionExpression="attribute_exists(pk) AND revision = :expected",
                ExpressionAttributeNames={f"#f{i}": name for i, name in enumerate(names)},
                ExpressionAttributeValues=to_item(
                    {**{f":v{i}": record[name] for i, name in enumerate(names)}, ":expected": expected_revision}
                ),
            )
        except Exception as error:
            if is_conditional_failure(error):
                raise Conflict(f"Dataset {dataset.dataset_id} changed meanwhile; read it again") from None
            raise

    def scan_pages(self, query: CatalogQuery, page_size: int, cursor: str | None) -> Iterator[tuple[Dataset, str]]:
        """Datasets matching `query` in id order, each with the cursor that resumes after it."""
        index = OWNER_INDEX if query.owner else ALL_INDEX
        key_name = _INDEX_KEYS[index][0]
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#key = :key",
            "ExpressionAttributeNames": {"#key": key_name},
            "ExpressionAttributeValues": {":key": query.owner or _LISTING},
            "Limit": page_size,
        }
        filters = []
        if query.classification:
            filters.append("classification = :classification")
            request["ExpressionAttributeValues"][":classification"] = query.classification
        if query.tag:
            filters.append("contains(tags, :tag)")
            request["ExpressionAttributeValues"][":tag"] = query.tag
        if query.text:
            filters.append("contains(search_text, :text)")
            request["ExpressionAttributeValues"][":text"] = query.text.lower()
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        request["ExpressionAttributeValues"] = to_item(request["ExpressionAttributeValues"])
        start = decode_cursor(cursor, index, {"pk", "sk", *_INDEX_KEYS[index]})
        if start and start[key_name] != (query.owner or _LISTING):
            raise InvalidRequest("The cursor is not one this listing issued")  # another listing's partition
        while True:
            if start:
                request["ExclusiveStartKey"] = to_item(start)
            response = self.client.query(**request)
            for item in response["Items"]:
                record = from_item(item)
                yield _dataset(record), encode_cursor({k: record[k] for k in ("pk", "sk", *_INDEX_KEYS[index])}, index)
            start = from_item(response["LastEvaluatedKey"]) if "LastEvaluatedKey" in response else None
            if not start:
                return


def _record(dataset: Dataset) -> dict[str, Any]:
    values = dataset.model_dump(by_alias=True, exclude_none=True)
    schema = values.pop("schema")
    search_text = " ".join([dataset.title, dataset.description, *dataset.tags]).lower()
    return dict(
        values,
        pk=_pk(dataset.dataset_id),
        sk="DATASET",
        listing=_LISTING,
        catalog_owner=dataset.owner,
        schema=json.dumps(schema),  # declared order kept: it is the column order of the curated files
        search_text=search_text,
    )


def _dataset(record: dict[str, Any]) -> Dataset:
    values = {k: v for k, v in record.items() if k not in {"pk", "sk", "listing", "catalog_owner", "search_text"}}
    values["schema"] = json.loads(values["schema"])
    return Dataset.model_validate(values)
