"""Turns platform events into notifications for the departments they concern: stored in each
department's inbox (`GET /notifications`) and published on the notifications SNS topic with a
`department` attribute, so each department subscribes with a filter policy on its own name."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from functions.core import aws
from functions.core.events import AccessRequestChanged, AlertRaised, DatasetVersionPublished, EventDetail, GrantChanged
from functions.core.observability import logger
from functions.identity.models import Caller
from functions.notifications.models import Notification, NotificationPage
from functions.notifications.repository import NotificationRepository
from functions.policy.engine import PolicyEngine, require_own_inbox

MAX_PAGE = 100
# A version that makes a rule fire in hundreds of windows tells people of the first ones and how many
# more there are; every firing is still an AlertRaised on the bus and in GET /datasets/{id}/alerts.
ALERTS_TOLD_PER_VERSION = 20
# Departments to tell about a new version, besides the owner (subscriptions, issue 5).
Subscribers = Callable[[DatasetVersionPublished], Iterable[str]]
AlertSubscribers = Callable[[AlertRaised], Iterable[str]]


def _none(_: Any) -> list[str]:
    return []


class NotificationService:
    sns = aws.LazyClient("sns")

    def __init__(
        self,
        repository: NotificationRepository,
        topic_arn: str | None,
        version_subscribers: Subscribers = _none,
        alert_subscribers: AlertSubscribers = _none,
        sns: Any = None,
    ) -> None:
        self._repository = repository
        self._topic = topic_arn
        self._version_subscribers = version_subscribers
        self._alert_subscribers = alert_subscribers
        self._sns = sns

    def notify(self, event_id: str, event: EventDetail) -> list[Notification]:
        """Store (once per event and department) and publish the notifications `event` causes."""
        delivered: list[Notification] = []
        for department, kind, message, at in self._notifications(event):
            stored_at = datetime.now(UTC).isoformat(timespec="microseconds")
            notification = Notification(
                notification_id=f"{stored_at}#{event_id}",
                department=department,
                kind=kind,
                message=message,
                at=at,
                subject=_subject(event),
            )
            if not self._repository.put(notification, event_id):
                continue  # this event was already delivered to this department
            self._publish(notification, event_id)
            delivered.append(notification)
        return delivered

    def _notifications(self, event: EventDetail) -> list[tuple[str, str, str, str]]:
        if isinstance(event, AccessRequestChanged):
            if event.change == "filed":
                text = f"{event.requester_department} asks for access to {event.dataset_id} ({event.purpose_category})"
                return [(event.owner, "access-request.filed", text, event.at)]
            verb = "approved" if event.change == "approved" else f"denied ({event.reason})"
            text = f"Your request for {event.dataset_id} was {verb} by {event.owner}"
            return [(event.requester_department, f"access-request.{event.change}", text, event.at)]
        if isinstance(event, GrantChanged):
            what = event.dataset_id or "datasets tagged " + ", ".join(event.tags)
            text = f"{event.owner} {event.change} access to {what}"
            return [(event.grantee_department, f"grant.{event.change}", text, event.at)]
        if isinstance(event, DatasetVersionPublished):
            text = f"{event.dataset_id} has version {event.version}"
            return [
                (d, "dataset.version-published", text, event.created_at) for d in sorted(set(self._version_subscribers(event)))
            ]
        if isinstance(event, AlertRaised):
            if event.firing > ALERTS_TOLD_PER_VERSION:
                return []
            text = f"{event.rule_name}: {event.value:g} vs {event.threshold:g} on {event.dataset_id} v{event.version}"
            if event.firing == ALERTS_TOLD_PER_VERSION and event.firings > ALERTS_TOLD_PER_VERSION:
                text += f" (and {event.firings - ALERTS_TOLD_PER_VERSION} more in this version: see its alerts)"
            recipients = {event.rule_owner, *self._alert_subscribers(event)}
            return [(d, "alert.raised", text, event.raised_at) for d in sorted(recipients)]
        return []

    def _publish(self, notification: Notification, event_id: str) -> None:
        if not self._topic:
            return
        try:
            self.sns.publish(
                TopicArn=self._topic,
                Subject=notification.message[:99],
                Message=json.dumps(notification.model_dump(mode="json"), default=str),
                MessageAttributes={
                    "department": {"DataType": "String", "StringValue": notification.department},
                    "kind": {"DataType": "String", "StringValue": notification.kind},
                },
            )
        except Exception:
            # Let the redelivery publish it: forget the stored copy so the retry is not taken for a duplicate.
            self._repository.forget(notification, event_id)
            logger.exception("could not publish a notification", extra={"department": notification.department})
            raise


def _subject(event: EventDetail) -> dict[str, Any]:
    """What a notification repeats of its event. A new version is named, not described: its figures
    (rows, files, lineage) follow each reader's grant and are read through the API."""
    if isinstance(event, DatasetVersionPublished):
        return event.model_dump(mode="json", include={"dataset_id", "version", "owner", "created_at"})
    return event.model_dump(mode="json")


class InboxService:
    """A department's inbox, read by its members (not audited: a department's own notifications)."""

    def __init__(self, repository: NotificationRepository, engine: PolicyEngine) -> None:
        self._repository = repository
        self._engine = engine

    def page(self, caller: Caller, after: str | None, limit: int) -> NotificationPage:
        require_own_inbox(self._engine, caller)
        notifications = self._repository.page(caller.department_id, after, max(1, min(limit, MAX_PAGE)))
        cursor = notifications[-1].notification_id if notifications else after
        return NotificationPage(notifications=notifications, next_cursor=cursor)
