"""Turns platform events into notifications for the departments they concern: stored in each
department's inbox (`GET /notifications`) and published on the notifications SNS topic with a
`department` attribute, so each department subscribes with a filter policy on its own name."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from functions.core import aws
from functions.core.events import (
    AccessRequestChanged,
    AlertRaised,
    DatasetVersionPublished,
    EventDetail,
    GrantChanged,
    PrivacyBudgetExhausted,
)
from functions.core.observability import logger
from functions.identity.models import Caller
from functions.notifications.models import Notification, NotificationPage
from functions.notifications.repository import Delivery, NotificationRepository
from functions.policy.access import AccessControl

MAX_PAGE = 100
# Departments to tell about a new version, besides the owner (subscriptions, issue 5).
Subscribers = Callable[[DatasetVersionPublished], Iterable[str]]
AlertSubscribers = Callable[[AlertRaised], Iterable[str]]
# (url, secret, payload) -> whether the receiver took it (functions.analytics.webhooks.WebhookSender.send)
WebhookPost = Callable[[str, str, dict[str, Any]], bool]


def _none(_: Any) -> list[str]:
    return []


class DeliveryIncomplete(Exception):
    """Some departments' notifications were not carried by every channel: the event is delivered
    again, and only what is missing is done then."""


class NotificationService:
    sns = aws.LazyClient("sns")

    def __init__(
        self,
        repository: NotificationRepository,
        topic_arn: str | None,
        version_subscribers: Subscribers = _none,
        alert_subscribers: AlertSubscribers = _none,
        sns: Any = None,
        post_webhook: WebhookPost | None = None,
    ) -> None:
        self._repository = repository
        self._topic = topic_arn
        self._version_subscribers = version_subscribers
        self._alert_subscribers = alert_subscribers
        self._sns = sns
        self._post_webhook = post_webhook

    def notify(self, event_id: str, event: EventDetail, webhooks: Mapping[str, tuple[str, str]] | None = None) -> list[Delivery]:
        """Tell each department concerned, once per event: stored in its inbox, published on the topic,
        and posted to its webhook (`webhooks`: department -> (url, secret)). Every department is tried
        even if another's channel fails; DeliveryIncomplete then asks for the event again."""
        deliveries: list[Delivery] = []
        failed: list[str] = []
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
            try:
                delivery = self._repository.put(notification, event_id)
                self._push(delivery, event_id, (webhooks or {}).get(department))
            except Exception:
                logger.exception("a notification was not carried by every channel", extra={"department": department})
                failed.append(department)
                continue
            deliveries.append(delivery)
        if failed:
            raise DeliveryIncomplete(f"not every channel carried {event_id} to {', '.join(failed)}")
        return deliveries

    def _push(self, delivery: Delivery, event_id: str, webhook: tuple[str, str] | None) -> None:
        notification = delivery.notification
        if self._topic and "sns" not in delivery.done:
            self._publish(notification)
            self._repository.carried(notification.department, event_id, "sns")
        # A receiver that does not take it after its retries is not pressed further (the inbox keeps
        # the notification); it is tried again only if the event comes again for another reason.
        post = self._post_webhook
        if (
            webhook is not None
            and post is not None
            and "webhook" not in delivery.done
            and post(webhook[0], webhook[1], notification.model_dump(mode="json"))
        ):
            self._repository.carried(notification.department, event_id, "webhook")

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
        if isinstance(event, PrivacyBudgetExhausted):
            text = (
                f"{event.grantee_department} has spent its privacy budget on {event.dataset_id} "
                f"({event.spent:g} of {event.budget:g}): its next private release was refused"
            )
            return [(event.owner, "privacy.budget-exhausted", text, event.at)]
        if isinstance(event, AlertRaised):
            first = event.alerts[0]
            text = f"{event.rule_name}: {first.value:g} vs {first.threshold:g} on {event.dataset_id} v{event.version}"
            if first.forecast is not None:
                ahead = first.forecast
                text = (
                    f"{event.rule_name}: forecast {first.value:.1f} ({ahead.lower:.1f}-{ahead.upper:.1f}) vs {first.threshold:g} "
                    f"at {first.window_start}, {ahead.lead_minutes} min after {ahead.last_observed}, "
                    f"on {event.dataset_id} v{event.version}"
                )
            if event.firings > 1:
                text += f" (and {event.firings - 1} more in this version: see its alerts)"
            recipients = {event.rule_owner, *self._alert_subscribers(event)}
            return [(d, "alert.raised", text, event.raised_at) for d in sorted(recipients)]
        return []

    def _publish(self, notification: Notification) -> None:
        self.sns.publish(
            TopicArn=self._topic,
            Subject=notification.message[:99],
            Message=json.dumps(notification.model_dump(mode="json"), default=str),
            MessageAttributes={
                "department": {"DataType": "String", "StringValue": notification.department},
                "kind": {"DataType": "String", "StringValue": notification.kind},
            },
        )


def _subject(event: EventDetail) -> dict[str, Any]:
    """What a notification repeats of its event. A new version is named, not described: its figures
    (rows, files, lineage) follow each reader's grant and are read through the API."""
    if isinstance(event, DatasetVersionPublished):
        return event.model_dump(mode="json", include={"dataset_id", "version", "owner", "created_at"})
    return event.model_dump(mode="json")


class InboxService:
    """A department's inbox, read by its members (not audited: a department's own notifications)."""

    def __init__(self, repository: NotificationRepository, access: AccessControl) -> None:
        self._repository = repository
        self._access = access

    def page(self, caller: Caller, after: str | None, limit: int) -> NotificationPage:
        self._access.require_own_inbox(caller)
        notifications = self._repository.page(caller.department_id, after, max(1, min(limit, MAX_PAGE)))
        cursor = notifications[-1].notification_id if notifications else after
        return NotificationPage(notifications=notifications, next_cursor=cursor)
