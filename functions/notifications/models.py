"""A department's notifications: what happened that concerns it, as one line and the event behind it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from functions.core.model import Model


class Notification(Model):
    notification_id: str = Field(description="Also the cursor: pass it as `after` to read what came later")
    department: str
    kind: str = Field(description="e.g. access-request.filed, grant.revoked, dataset.version-published, alert.raised")
    message: str
    at: str
    subject: dict[str, Any] = Field(description="The event detail behind the notification")


class NotificationPage(Model):
    notifications: list[Notification]
    next_cursor: str | None = Field(default=None, description="Pass as `after` to follow the inbox")
