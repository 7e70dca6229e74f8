"""The notifications table: `<department>` / `<stored at, µs>#<event id>`, kept 90 days (TTL).

The sort key follows the order notifications are stored in, so a follower reading "after my
cursor" sees what arrived since (events can arrive out of their own order). A marker item
`<department>#seen` / `<event id>`, written in the same transaction, makes a redelivered event a no-op.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.notifications.models import Notification

RETENTION = timedelta(days=90)


class NotificationRepository(DynamoTable):
    def put(self, notification: Notification, event_id: str) -> bool:
        """False when `event_id` was already delivered to this department (a duplicate event)."""
        expires = int((datetime.now(UTC) + RETENTION).timestamp())
        record = dict(
            notification.model_dump(exclude={"subject", "notification_id", "department"}),
            pk=notification.department,
            sk=notification.notification_id,
            subject=json.dumps(notification.subject, default=str),
            expires_at=expires,
        )
        marker = {"pk": f"{notification.department}#seen", "sk": event_id, "notification": notification.notification_id}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_item(dict(marker, expires_at=expires)),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": to_item(record)}},
                ]
            )
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def forget(self, notification: Notification, event_id: str) -> None:
        """Undo `put` (its publication failed; the redelivered event will store it again)."""
        self.client.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self._table, "Key": to_item({"pk": f"{notification.department}#seen", "sk": event_id})}},
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": to_item({"pk": notification.department, "sk": notification.notification_id}),
                    }
                },
            ]
        )

    def page(self, department: str, after: str | None, limit: int) -> list[Notification]:
        """Oldest first after `after`; without it, the newest `limit` (still oldest first)."""
        now = int(datetime.now(UTC).timestamp())
        if after:  # an empty cursor is no cursor
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
