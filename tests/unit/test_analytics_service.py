"""The analytics service's own checks, before any AWS call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cityshare.examples import PM25_HOURLY_RULE
from functions.analytics.models import AlertRuleCreate, SubscriptionCreate
from functions.analytics.scope import ReadScope, filter_sql, scope_for
from functions.analytics.service import AnalyticsService, check_rule
from functions.catalog.models import Dataset
from functions.core.errors import Forbidden, InvalidRequest
from functions.identity.models import Caller
from functions.policy.access import AccessControl
from functions.policy.engine import PolicyEngine
from functions.sharing.models import Grant, RowFilter
from tests.datasets import city_schema

ENGINE = PolicyEngine(Path(__file__).resolve().parents[2] / "policies")
CALLER = Caller(department_id="health", principal_id="p", roles=("member",), jti="j" * 16, body_sha256="x" * 43)
AIR = Dataset.model_validate(
    {
        "dataset_id": "air-quality",
        "title": "Air",
        "classification": "internal",
        "schema": city_schema("air-quality"),
        "owner": "environment",
        "created_at": "t",
        "updated_at": "t",
        "created_by": "p",
    }
)


def service(allow_http: bool) -> AnalyticsService:
    unused: Any = None  # a tag subscription with a bad webhook is refused before anything is read
    return AnalyticsService(unused, unused, unused, AccessControl(ENGINE, unused), unused, allow_http_webhooks=allow_http)


def test_webhooks_must_be_https_outside_the_embedded_stack() -> None:
    with pytest.raises(InvalidRequest):
        service(False).subscribe(CALLER, SubscriptionCreate(tag="air", webhook_url="http://receiver.city.example/hook"))


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "https://10.0.0.8/hook", "https://[::1]:9001/"])
def test_a_webhook_into_a_private_network_is_refused_when_subscribing(url: str) -> None:
    with pytest.raises(InvalidRequest, match="public address"):
        service(False).subscribe(CALLER, SubscriptionCreate(tag="air", webhook_url=url))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataset_id": "air-quality", "tag": "air"}, "exactly one"),
        ({}, "exactly one"),
        ({"tag": "air", "kinds": []}, "at least 1"),
    ],
)
def test_a_subscription_names_one_subject(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SubscriptionCreate.model_validate(body)


def rule(**changes: Any) -> AlertRuleCreate:
    return AlertRuleCreate.model_validate(dict(PM25_HOURLY_RULE, **changes))


def test_rules_are_checked_against_the_schema_and_the_grant() -> None:
    everything = scope_for(AIR, None)
    check_rule(rule(), AIR, everything)
    with pytest.raises(InvalidRequest, match="not numeric"):
        check_rule(rule(measure={"aggregate": "mean", "column": "district"}), AIR, everything)
    with pytest.raises(InvalidRequest, match="date-time"):
        check_rule(rule(window={"column": "pm10", "minutes": 60}), AIR, everything)
    narrow = ReadScope("air-quality", ["district", "measured_at", "pm25"])
    with pytest.raises(Forbidden, match="station_id"):
        check_rule(rule(), AIR, narrow)


@pytest.mark.parametrize(
    "body",
    [
        {"threshold": None},  # neither threshold nor baseline
        {"baseline": {"windows": 4, "factor": 2}},  # both
        {"window": None, "consecutive": 3},  # a streak without windows
        {"measure": {"aggregate": "mean"}},  # mean of nothing
        {"group_by": ["Station; DROP TABLE x"]},  # not a column name
    ],
)
def test_malformed_rules_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rule(**body)


def test_a_grant_scope_leaves_out_masked_columns_and_keeps_its_filter() -> None:
    grant = Grant.model_validate(
        {
            "grant_id": "g" + "1" * 24,
            "dataset_id": "air-quality",
            "owner": "environment",
            "grantee_department": "health",
            "purpose": "Health watches pollution",
            "purpose_category": "public-health",
            "created_by": "s",
            "created_at": "t",
            "terms": {
                "columns": ["station_id", "district", "pm25"],
                "masked_columns": ["station_id"],
                "row_filter": {
                    "any": [
                        {"condition": {"column": "district", "op": "in", "value": ["Centre", "Harbour"]}},
                        {"condition": {"column": "pm25", "op": "not_null"}},
                    ]
                },
            },
        }
    )
    scope = scope_for(AIR, grant)
    assert scope.columns == ["district", "pm25"] and scope.grant_id == grant.grant_id
    sql, params = filter_sql(RowFilter.model_validate(grant.terms.row_filter.model_dump()))  # type: ignore[union-attr]
    assert sql == '((coalesce("district" IN (?, ?), false)) OR ("pm25" IS NOT NULL))' and params == ["Centre", "Harbour"]
