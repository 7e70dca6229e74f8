"""The outbox: a sharing change commits with its events; if the bus cannot take them at that
moment, the change stands and the scheduled sweeper publishes them later, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.core.events import EventPublisher
from functions.core.settings import Settings
from functions.handlers import triggers
from functions.sharing.models import Approval
from functions.sharing.outbox import OutboxSweeper
from functions.sharing.repository import SharingRepository
from functions.sharing.service import SharingService
from infra.local.lambdas import LocalContext
from tests.integration.conftest import STEWARDS, Aws, ask, published_events


class Unreachable:
    def put_events(self, **_: Any) -> None:
        raise ConnectionError("EventBridge is unreachable")


def test_a_change_stands_when_the_bus_is_down_and_the_sweeper_publishes_its_events(
    moto_aws: Aws,
    settings: Settings,
    sharing: SharingService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = ask(sharing)
    published_events(moto_aws)  # drop the "filed" event
    monkeypatch.setattr(sharing._events, "_events", Unreachable())
    grant = sharing.approve(STEWARDS[0], "traffic-flow", asked, Approval())  # answered, not failed
    assert sharing._sharing.get_request("traffic-flow", asked).status == "approved"
    repository = SharingRepository(settings.sharing_table)
    later = (datetime.now(UTC) + timedelta(minutes=2)).isoformat(timespec="microseconds")
    (left,) = repository.outbox(later)
    assert [e.detail_type() for e in left[1]] == ["AccessRequestChanged", "GrantChanged"]
    assert published_events(moto_aws) == []

    monkeypatch.setattr(sharing._events, "_events", None)
    sweeper = OutboxSweeper(
        repository, EventPublisher(settings.event_bus), clock=lambda: datetime.now(UTC) + timedelta(minutes=2)
    )
    assert sweeper.sweep() == 1 and sweeper.sweep() == 0
    events = published_events(moto_aws)
    assert sorted(e["detail-type"] for e in events) == ["AccessRequestChanged", "GrantChanged"]
    assert next(e for e in events if e["detail-type"] == "GrantChanged")["detail"]["grant_id"] == grant.grant_id


def test_a_published_change_leaves_nothing_behind(
    moto_aws: Aws,
    settings: Settings,
    sharing: SharingService,
) -> None:
    sharing.approve(STEWARDS[0], "traffic-flow", ask(sharing), Approval())
    repository = SharingRepository(settings.sharing_table)
    assert repository.outbox((datetime.now(UTC) + timedelta(minutes=2)).isoformat()) == []
    assert OutboxSweeper(repository, EventPublisher(settings.event_bus)).sweep() == 0


def test_the_triggers_function_sweeps_on_its_schedule(settings: Settings) -> None:
    triggers.outbox.cache_clear()
    # The input the CDK rule sends (tests/infra checks the rule), and the embedded stack's pump alike.
    assert triggers.handler({"cityshare-schedule": "outbox"}, LocalContext("triggers", 1024)) == {
        "published": 0,
        "announced": 0,
        "first_builds": 0,
    }
