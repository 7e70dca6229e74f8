"""The events CityShare puts on its EventBridge bus: one pydantic model per detail type, whose JSON
Schema is written to schemas/events/ (`make openapi`) for the departments that consume them.

A consumer must expect duplicates and any order: each event names what it is about fully (dataset,
version, grant), so handling it twice or late gives the same result.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import ConfigDict, Field

from functions.core import aws
from functions.core.model import Model

SOURCE = "cityshare"


class EventDetail(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__

    def key(self) -> str:
        """What makes this event this event, however often it is delivered (consumers dedupe on it)."""
        raise NotImplementedError


class DatasetVersionPublished(EventDetail):
    """A new version of a dataset was committed and can be read. It carries no figure of the data
    (no profile): its readers see those through the API, as far as their grants go."""

    dataset_id: str
    version: int = Field(ge=1)
    owner: str
    classification: str
    tags: list[str]
    rows: int = Field(ge=0)
    files: list[str]
    created_at: str
    # The versions this one was computed from (derived datasets), as "dataset@version".
    inputs: list[str] = Field(default_factory=list)

    def key(self) -> str:
        return f"version:{self.dataset_id}@{self.version}"


class GrantChanged(EventDetail):
    """A grant was created or revoked (expiry needs no event: it is checked on every request)."""

    change: Literal["granted", "revoked"]
    grant_id: str
    owner: str
    grantee_department: str
    grantee_principal: str | None = None
    dataset_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    by: str
    at: str
    access_request: str | None = None

    def key(self) -> str:
        return f"grant:{self.grant_id}:{self.change}"


class AccessRequestChanged(EventDetail):
    """An access request was filed, approved or denied."""

    change: Literal["filed", "approved", "denied"]
    access_request_id: str
    dataset_id: str
    owner: str
    requester_department: str
    requester_principal: str
    purpose_category: str
    by: str
    at: str
    reason: str = ""
    grant_id: str | None = None

    def key(self) -> str:
        return f"request:{self.access_request_id}:{self.change}"


class Forecasted(Model):
    """A forecast rule's firing: `value` is the forecast for the window, within [lower, upper] at
    the rule's level; the window starts `lead_minutes` after the last window observed (`last_observed`)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    lower: float
    upper: float
    lead_minutes: int
    last_observed: str


class Firing(Model):
    """One window (or group) in which an alert rule's measure crossed its threshold (or, for a
    forecast rule, is forecast to)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    alert_id: str
    group: dict[str, Any]
    window_start: str | None = None
    window_end: str | None = None
    value: float
    threshold: float
    forecast: Forecasted | None = None


# An event holds at most this many firings (EventBridge takes 256 KB per event); every firing is
# stored and listed by GET /datasets/{id}/alerts.
FIRINGS_PER_EVENT = 100


class AlertRaised(EventDetail):
    """An alert rule fired on a dataset version: one event per rule and version, holding its firings
    (the first FIRINGS_PER_EVENT of them; `firings` counts them all)."""

    rule_id: str
    rule_name: str
    rule_owner: str
    dataset_id: str
    version: int
    owner: str
    comparison: str
    raised_at: str
    firings: int = Field(ge=1, description="How many windows or groups the rule fired on in this version")
    alerts: list[Firing] = Field(min_length=1, max_length=FIRINGS_PER_EVENT, description="The firings, first ones first")

    def key(self) -> str:
        return f"alerts:{self.rule_id}:{self.dataset_id}@{self.version}"


class PrivacyBudgetExhausted(EventDetail):
    """A differentially private release was refused: the grantee department has spent what it may
    spend on the dataset (its owner's stewards are told)."""

    dataset_id: str
    owner: str
    grantee_department: str
    grant_id: str
    spent: float
    budget: float
    at: str

    def key(self) -> str:
        return f"budget:{self.dataset_id}:{self.grantee_department}:{self.budget:g}"


class DepartmentRegistered(EventDetail):
    """The platform admin registered a department: the provisioner makes its resources."""

    department_id: str
    registered_at: str

    def key(self) -> str:
        return f"department:{self.department_id}:registered"


EVENT_TYPES: tuple[type[EventDetail], ...] = (
    DatasetVersionPublished,
    GrantChanged,
    AccessRequestChanged,
    AlertRaised,
    PrivacyBudgetExhausted,
    DepartmentRegistered,
)


def to_entry(detail: EventDetail) -> dict[str, str]:
    return {"detail_type": detail.detail_type(), "detail": detail.model_dump_json()}


def from_entry(entry: dict[str, str]) -> EventDetail:
    return parse_event(entry["detail_type"], json.loads(entry["detail"]))


def parse_event(detail_type: str, detail: dict[str, Any]) -> EventDetail:
    """The typed detail of an EventBridge event; ValueError for a type CityShare does not emit."""
    for event_type in EVENT_TYPES:
        if event_type.detail_type() == detail_type:
            return event_type.model_validate(detail)
    raise ValueError(f"unknown event type {detail_type!r}")


class EventPublisher:
    events = aws.LazyClient("events")

    def __init__(self, bus: str, events: Any = None) -> None:
        self._bus = bus
        self._events = events

    def publish(self, *details: EventDetail) -> None:
        if not details:
            return
        entries = [
            {
                "EventBusName": self._bus,
                "Source": SOURCE,
                "DetailType": detail.detail_type(),
                "Detail": json.dumps(detail.model_dump(mode="json"), default=str),
            }
            for detail in details
        ]
        for start in range(0, len(entries), 10):  # PutEvents takes at most 10 entries
            response = self.events.put_events(Entries=entries[start : start + 10])
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge refused {response['FailedEntryCount']} event(s)")
