"""The notifications table: `<department>` / `<stored at, µs>#<event id>`, kept 90 days (TTL).

The sort key follows the order notifications are stored in, so a follower reading "after my
cursor" sees what arrived since (events can arrive out of their own order). A marker item
`<department>#seen` / `<event id>`, written in the same transaction, makes a redelivered event store
nothing new, and records which push channels (SNS, webhook) have carried it: a redelivery pushes
only what is missing, so each department is told once per event and channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.notifications.models import Notification

RETENTION = timedelta(days=90)
_CHANNELS = ("sns", "webhook")


@dataclass
class Delivery:
    """A department's notification of one event: stored once; `done` names the channels that carried it."""

    notification: Notification
    new: bool
    done: set[str] = field(default_factory=set)


class NotificationRepository(DynamoTable):
    def put(self, notification: Notification, event_id: str) -> Delivery:
        """Store the notification once per (department, event): a redelivered event gets the first
        delivery back, with the channels that already carried it."""
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
            if not is_conditional_failure(error):
                raise
            first = self.client.get_item(
                TableName=self._table, Key=to_item({"pk": marker["pk"], "sk": event_id}), ConsistentRead=True
            ).get("Item")
            if first is None:
                raise  # the marker was there a moment ago: let the redelivery look again
            recorded = from_item(first)
            stored = notification.model_copy(update={"notification_id": str(recorded["notification"])})
            return Delivery(stored, new=False, done={c for c in _CHANNELS if recorded.get(c)})
        return Delivery(notification, new=True)

    def carried(self, department: str, event_id: str, channel: str) -> None:
        """`channel` has carried the department's notification of `event_id`."""
        assert channel in _CHANNELS
        self.client.update_item(
            TableName=self._table,
            Key=to_item({"pk": f"{department}#seen", "sk": event_id}),
            UpdateExpression="SET #channel = :yes",
            ExpressionAttributeNames={"#channel": channel},
            ExpressionAttributeValues=to_item({":yes": True}),
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
