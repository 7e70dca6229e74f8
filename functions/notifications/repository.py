"""The notifications table: `<department>` / `<time>#<event id>`, kept 90 days (TTL).

The sort key comes from the event, so a redelivered event writes the same item again, not a second one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.notifications.models import Notification

RETENTION = timedelta(days=90)


class NotificationRepository(DynamoTable):
    def put(self, notification: Notification) -> bool:
        """False when this notification was already stored (a duplicate event)."""
        expires = datetime.now(UTC) + RETENTION
        record = dict(
            notification.model_dump(exclude={"subject", "notification_id", "department"}),
            pk=notification.department,
            sk=notification.notification_id,
            subject=json.dumps(notification.subject, default=str),
            expires_at=int(expires.timestamp()),
        )
        try:
            self.client.put_item(TableName=self._table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)")
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def forget(self, notification: Notification) -> None:
        self.client.delete_item(
            TableName=self._table, Key=to_item({"pk": notification.department, "sk": notification.notification_id})
        )

    def page(self, department: str, after: str | None, limit: int) -> list[Notification]:
        """Oldest first after `after`; without it, the newest `limit` (still oldest first)."""
        now = int(datetime.now(UTC).timestamp())
        if after is not None:
            response = self.client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :d AND sk > :after",
                ExpressionAttributeValues=to_item({":d": department, ":after": after}),
                Limit=limit,
            )
            items = response["Items"]
        else:
            response = self.client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :d",
                ExpressionAttributeValues=to_item({":d": department}),
                ScanIndexForward=False,
                Limit=limit,
            )
            items = list(reversed(response["Items"]))
        records = [from_item(item) for item in items]
        # TTL deletes lazily: an expired item may still be read.
        return [_notification(r) for r in records if int(r.get("expires_at", now + 1)) > now]


def _notification(record: dict[str, object]) -> Notification:
    return Notification(
        notification_id=str(record["sk"]),
        department=str(record["pk"]),
        kind=str(record["kind"]),
        message=str(record["message"]),
        at=str(record["at"]),
        subject=json.loads(str(record["subject"])),
    )
