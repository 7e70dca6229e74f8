"""Uploads and dataset versions in the catalog table, beside their dataset:
`DATASET#<id>` / `UPLOAD#<upload_id>` and `DATASET#<id>` / `VERSION#<0000000001>`.

A version is committed in one transaction: the version item (new), the dataset's latest_version
(n-1 -> n), the upload's status (not yet published -> published, only by the attempt that holds its
claim) and a settlement marker. Two deliveries of the same upload cannot both publish it, and two
uploads cannot both take version n.

`SETTLE` / `<dataset>#<upload>` marks an upload that reached an end (published, rejected, failed)
whose after-steps (audit entry, landing original, announcement) are not yet all done: written with
the end, deleted once they are, swept if the function died in between (functions/ingest/settle.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import Conflict, NotFound
from functions.ingest.models import DatasetVersion, IngestReport, Upload


def _pk(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


def _version_sk(version: int) -> str:
    return f"VERSION#{version:010d}"


SETTLE = "SETTLE"
ENDS = ("published", "rejected", "failed")


def _settle_item(table: str, dataset_id: str, upload_id: str, status: str) -> dict[str, Any]:
    marker = {"pk": SETTLE, "sk": f"{dataset_id}#{upload_id}", "status": status, "since": int(time.time())}
    return {"Put": {"TableName": table, "Item": to_item(marker)}}


class VersionTaken(Exception):
    """Another upload committed version n first: read the latest version again and retry."""


class IngestRepository(DynamoTable):
    def create_upload(self, upload: Upload) -> None:
        self.client.put_item(
            TableName=self._table,
            Item=to_item(_upload_record(upload)),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_upload(self, dataset_id: str, upload_id: str) -> Upload | None:
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": _pk(dataset_id), "sk": f"UPLOAD#{upload_id}"}), ConsistentRead=True
        )
        return _upload(from_item(response["Item"])) if "Item" in response else None

    def mark_processing(self, upload: Upload, now: str, claim: str) -> bool:
        """Claim an upload for processing attempt `claim`; False if it is already published or
        rejected. A claim held by another attempt is taken over (that attempt died, or is a duplicate
        delivery: it can no longer commit). A failed upload may be claimed again: its message
        redriven from the dead-letter queue after a fix."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key=to_item({"pk": _pk(upload.dataset_id), "sk": f"UPLOAD#{upload.upload_id}"}),
                UpdateExpression="SET #status = :processing, updated_at = :now, claim = :claim",
                ConditionExpression="#status IN (:waiting, :processing, :failed)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item(
                    {
                        ":processing": "processing",
                        ":waiting": "awaiting_upload",
                        ":failed": "failed",
                        ":now": now,
                        ":claim": claim,
                    }
                ),
            )
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def end_upload(
        self,
        upload: Upload,
        status: str,
        report: IngestReport,
        now: str,
        only_if: tuple[str, str] | None = None,
        claim: str | None = None,
    ) -> bool:
        """Move an upload that is not published to `status` with its report (`only_if`: and only if
        its status and updated_at are still these; `claim`: and only while this attempt holds it).
        An end (rejected, failed) is written with its settlement marker. False when the condition
        did not hold."""
        condition, values = "#status <> :published", {":published": "published"}
        if only_if is not None:
            condition += " AND #status = :was AND updated_at = :then"
            values.update({":was": only_if[0], ":then": only_if[1]})
        if claim is not None:
            condition += " AND claim = :claim"
            values[":claim"] = claim
        update = {
            "TableName": self._table,
            "Key": to_item({"pk": _pk(upload.dataset_id), "sk": f"UPLOAD#{upload.upload_id}"}),
            "UpdateExpression": "SET #status = :status, report = :report, updated_at = :now",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_item({**values, ":status": status, ":report": report.model_dump_json(), ":now": now}),
        }
        try:
            if status in ENDS:
                self.client.transact_write_items(
                    TransactItems=[{"Update": update}, _settle_item(self._table, upload.dataset_id, upload.upload_id, status)]
                )
            else:
                self.client.update_item(**update)
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def commit_version(self, version: DatasetVersion, now: str, claim: str) -> None:
        """Raises VersionTaken when another upload got version n first, Conflict when this upload
        was already published or another attempt holds its claim (a duplicate delivery)."""
        record = dict(_version_record(version), pk=_pk(version.dataset_id), sk=_version_sk(version.version))
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_item(record),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": to_item({"pk": _pk(version.dataset_id), "sk": "DATASET"}),
                            "UpdateExpression": "SET latest_version = :version, latest_files = :files, latest_bytes = :bytes",
                            "ConditionExpression": "latest_version = :previous",
                            "ExpressionAttributeValues": to_item(
                                {
                                    ":version": version.version,
                                    ":previous": version.version - 1,
                                    ":files": version.files,
                                    ":bytes": version.bytes,
                                }
                            ),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": to_item({"pk": _pk(version.dataset_id), "sk": f"UPLOAD#{version.upload_id}"}),
                            "UpdateExpression": (
                                "SET #status = :published, version = :version, report = :report, updated_at = :now"
                            ),
                            # failed too: a timed-out attempt that was marked failed may still finish.
                            "ConditionExpression": "#status IN (:processing, :failed) AND claim = :claim",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": to_item(
                                {
                                    ":published": "published",
                                    ":processing": "processing",
                                    ":failed": "failed",
                                    ":version": version.version,
                                    ":report": version.report.model_dump_json(),
                                    ":now": now,
                                    ":claim": claim,
                                }
                            ),
                        }
                    },
                    _settle_item(self._table, version.dataset_id, version.upload_id, "published"),
                ]
            )
        except self.client.exceptions.TransactionCanceledException as cancelled:
            reasons = [r.get("Code") for r in cancelled.response.get("CancellationReasons", [])]
            if len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                raise Conflict(f"Upload {version.upload_id} is no longer being processed") from None
            raise VersionTaken() from None

    def pending_settlements(self, older_than_seconds: int) -> list[tuple[str, str, str]]:
        """(dataset, upload, status) of ends whose after-steps have been pending that long."""
        cutoff = int(time.time()) - older_than_seconds
        found: list[tuple[str, str, str]] = []
        for page in self.client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="since <= :cutoff",
            ExpressionAttributeValues=to_item({":pk": SETTLE, ":cutoff": cutoff}),
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                record = from_item(item)
                dataset_id, upload_id = str(record["sk"]).split("#", 1)
                found.append((dataset_id, upload_id, str(record["status"])))
        return found

    def settled(self, dataset_id: str, upload_id: str, status: str) -> None:
        """The after-steps of the `status` end are done (an end written since is kept)."""
        try:
            self.client.delete_item(
                TableName=self._table,
                Key=to_item({"pk": SETTLE, "sk": f"{dataset_id}#{upload_id}"}),
                ConditionExpression="#status = :status",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item({":status": status}),
            )
        except Exception as error:
            if not is_conditional_failure(error):
                raise

    def mark_announced(self, dataset_id: str, upload_id: str) -> None:
        self.client.update_item(
            TableName=self._table,
            Key=to_item({"pk": _pk(dataset_id), "sk": f"UPLOAD#{upload_id}"}),
            UpdateExpression="SET announced = :yes",
            ExpressionAttributeValues=to_item({":yes": True}),
        )

    def get_version(self, dataset_id: str, version: int) -> DatasetVersion:
        response = self.client.get_item(
            TableName=self._table, Key=to_item({"pk": _pk(dataset_id), "sk": _version_sk(version)}), ConsistentRead=True
        )
        if "Item" not in response:
            raise NotFound(f"Dataset {dataset_id} has no version {version}")
        return _version(from_item(response["Item"]))

    def list_versions(self, dataset_id: str, limit: int = 100) -> list[DatasetVersion]:
        response = self.client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_item({":pk": _pk(dataset_id), ":prefix": "VERSION#"}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_version(from_item(item)) for item in response["Items"]]

    def is_announced(self, dataset_id: str, upload_id: str) -> bool:
        response = self.client.get_item(
            TableName=self._table,
            Key=to_item({"pk": _pk(dataset_id), "sk": f"UPLOAD#{upload_id}"}),
            ProjectionExpression="announced",
            ConsistentRead=True,
        )
        return bool(from_item(response.get("Item", {})).get("announced"))


def _upload_record(upload: Upload) -> dict[str, Any]:
    values = upload.model_dump(exclude_none=True)
    values["request"] = upload.request.model_dump_json()
    if upload.report is not None:
        values["report"] = upload.report.model_dump_json()
    return dict(values, pk=_pk(upload.dataset_id), sk=f"UPLOAD#{upload.upload_id}")


def _upload(record: dict[str, Any]) -> Upload:
    values = {k: v for k, v in record.items() if k not in {"pk", "sk", "announced"}}
    values["request"] = json.loads(values["request"])
    if "report" in values:
        values["report"] = json.loads(values["report"])
    return Upload.model_validate(values)


def _version_record(version: DatasetVersion) -> dict[str, Any]:
    # Profile and report are kept as JSON text: their values (min/max of any type) need no DynamoDB typing.
    values = version.model_dump()
    values.update(
        profile=version.profile.model_dump_json(),
        report=version.report.model_dump_json(),
        output_schema=json.dumps(version.output_schema),
    )
    return values


def _version(record: dict[str, Any]) -> DatasetVersion:
    values = {k: v for k, v in record.items() if k not in {"pk", "sk"}}
    for name in ("profile", "report", "output_schema"):
        values[name] = json.loads(values[name])
    return DatasetVersion.model_validate(values)
