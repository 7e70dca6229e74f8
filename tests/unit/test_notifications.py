"""Who is told what, from each event (no AWS involved)."""

from __future__ import annotations

from typing import Any

from functions.core.events import AccessRequestChanged, AlertRaised, Firing, GrantChanged
from functions.notifications.service import NotificationService


def told(event: Any, subscribers: list[str] | None = None) -> list[tuple[str, str, str]]:
    unused: Any = None
    service = NotificationService(unused, None, alert_subscribers=lambda _: subscribers or [])
    return [(department, kind, message) for department, kind, message, _ in service._notifications(event)]


def alert(firings: int) -> AlertRaised:
    return AlertRaised(
        rule_id="x" * 25,
        rule_name="PM2.5 hourly mean above 75",
        rule_owner="environment",
        dataset_id="air-quality",
        version=3,
        owner="environment",
        comparison="gt",
        raised_at="t",
        firings=firings,
        alerts=[
            Firing(alert_id=f"a{n:024d}", group={"station_id": f"AQ-{n:03d}"}, value=88.8, threshold=75)
            for n in range(min(firings, 100))
        ],
    )


def test_requests_decisions_and_grants_reach_the_department_concerned() -> None:
    filed = AccessRequestChanged(
        change="filed",
        access_request_id="r" * 25,
        dataset_id="traffic-flow",
        owner="transport",
        requester_department="environment",
        requester_principal="analyst",
        purpose_category="research",
        by="analyst",
        at="t",
    )
    assert [d for d, _, _ in told(filed)] == ["transport"]
    assert [d for d, _, _ in told(filed.model_copy(update={"change": "denied", "reason": "no basis"}))] == ["environment"]
    revoked = GrantChanged(
        change="revoked",
        grant_id="g" * 25,
        owner="transport",
        grantee_department="health",
        dataset_id="traffic-flow",
        by="s",
        at="t",
    )
    assert told(revoked) == [("health", "grant.revoked", "transport revoked access to traffic-flow")]
    by_tags = revoked.model_copy(update={"dataset_id": None, "tags": ["mobility"]})
    assert told(by_tags)[0][2] == "transport revoked access to datasets tagged mobility"


def test_an_alert_storm_is_told_once_per_rule_and_version_with_how_many_more() -> None:
    assert [d for d, _, _ in told(alert(504), ["health"])] == ["environment", "health"]
    (message,) = {m for _, _, m in told(alert(504))}
    assert message.endswith("(and 503 more in this version: see its alerts)")
    assert "more" not in told(alert(1))[0][2]
