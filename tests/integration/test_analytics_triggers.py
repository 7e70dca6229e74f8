"""The trigger functions' analytics against moto: alert rules and derived datasets with duplicate,
late and out-of-order events, and grants that end."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.analytics.models import AlertRule, DerivedDataset, Subscription
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.triggers import TriggerService
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.events import DatasetVersionPublished
from functions.core.settings import Settings
from functions.handlers import triggers
from functions.ingest.repository import IngestRepository
from functions.notifications.repository import NotificationRepository
from functions.sharing.models import Grant
from functions.sharing.repository import SharingRepository
from tests.datasets import city_schema
from tests.integration.conftest import (
    Aws,
    assert_matches_published_schema,
    commit_version,
    provision_departments,
    published_events,
)

START = dt.datetime(2026, 11, 4, tzinfo=dt.UTC)


@pytest.fixture
def service(settings: Settings) -> Iterator[TriggerService]:
    triggers.triggers.cache_clear()
    yield triggers.triggers()
    triggers.triggers.cache_clear()


def publish(
    moto_aws: Aws,
    settings: Settings,
    dataset_id: str,
    owner: str,
    version: int,
    rows: list[dict[str, Any]],
    tags: list[str] | None = None,
) -> DatasetVersionPublished:
    """A curated version as ingest leaves it: Parquet in curated/, the dataset item pointing at it."""
    schema = pa.schema(
        [
            ("station_id", pa.string()),
            ("district", pa.string()),
            ("measured_at", pa.timestamp("us", tz="UTC")),
            ("pm25", pa.float64()),
        ]
    )
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    key = f"curated/{owner}/{dataset_id}/u{version:032d}/part-00000.parquet"
    moto_aws.client("s3").put_object(Bucket=settings.data_bucket, Key=key, Body=sink.getvalue())
    catalog = CatalogRepository(settings.catalog_table)
    dataset = Dataset.model_validate(
        {
            "dataset_id": dataset_id,
            "title": dataset_id,
            "classification": "internal",
            "schema": {
                "type": "object",
                "properties": {k: v for k, v in city_schema("air-quality")["properties"].items() if k in schema.names},
            },
            "owner": owner,
            "created_at": "t",
            "updated_at": "t",
            "created_by": "p",
            "latest_version": version - 1,
            "tags": tags or [],
        }
    )
    moto_aws.client("dynamodb").delete_item(
        TableName=settings.catalog_table, Key={"pk": {"S": f"DATASET#{dataset_id}"}, "sk": {"S": "DATASET"}}
    )
    catalog.create(dataset)
    commit_version(settings, dataset_id, owner, version, [key], len(rows))
    return DatasetVersionPublished(
        dataset_id=dataset_id,
        version=version,
        owner=owner,
        classification="internal",
        tags=[],
        rows=len(rows),
        files=[key],
        created_at="t",
    )


def readings(peak: float) -> list[dict[str, Any]]:
    return [
        {
            "station_id": "AQ-1",
            "district": "Centre",
            "measured_at": START + dt.timedelta(minutes=10 * i),
            "pm25": peak if i < 6 else 10.0,
        }
        for i in range(12)
    ]


def rule(owner: str, grant_id: str | None = None) -> AlertRule:
    return AlertRule.model_validate(
        {
            "name": "PM2.5 hourly mean above 75",
            "measure": {"aggregate": "mean", "column": "pm25"},
            "group_by": ["station_id"],
            "window": {"column": "measured_at", "minutes": 60},
            "comparison": "gt",
            "threshold": 75,
            "rule_id": "x" + "1" * 24,
            "dataset_id": "air",
            "owner": owner,
            "created_by": "p",
            "created_at": "t",
            "grant_id": grant_id,
        }
    )


def alert_events(moto_aws: Aws) -> list[dict[str, Any]]:
    return [e for e in published_events(moto_aws) if e["detail-type"] == "AlertRaised"]


def test_a_redelivered_version_event_raises_each_alert_once(moto_aws: Aws, settings: Settings, service: TriggerService) -> None:
    AnalyticsRepository(settings.analytics_table).put_rule(rule("environment"))
    event = publish(moto_aws, settings, "air", "environment", 1, readings(90.0))
    first = service.evaluate_rules(event)
    again = service.evaluate_rules(event)
    assert len(first) == 1 and again == []
    raised = alert_events(moto_aws)
    assert [[a["window_start"] for a in e["detail"]["alerts"]] for e in raised] == [["2026-11-04T00:00:00Z"]]
    assert_matches_published_schema(raised[0])


def test_a_rule_that_fails_on_a_version_skips_only_itself(
    moto_aws: Aws, settings: Settings, service: TriggerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query that fails on the data (out of memory, over its time) fails the same on every retry:
    the other rules on the version still raise their alerts, and the event is not failed for it."""
    from functions.analytics import engine
    from functions.core.errors import QueryFailed

    repository = AnalyticsRepository(settings.analytics_table)
    repository.put_rule(rule("environment"))
    failing = rule("environment").model_copy(update={"rule_id": "x" + "2" * 24, "name": "Fails on this data"})
    repository.put_rule(failing)
    evaluate = engine.evaluate

    def evaluate_or_fail(connection: Any, the_rule: AlertRule, *args: Any, **kwargs: Any) -> Any:
        if the_rule.rule_id == failing.rule_id:
            raise QueryFailed("Out of Memory Error: could not allocate block of size 256.0 KiB")
        return evaluate(connection, the_rule, *args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", evaluate_or_fail)
    raised = service.evaluate_rules(publish(moto_aws, settings, "air", "environment", 1, readings(90.0)))
    assert [a.rule_id for a in raised] == [rule("environment").rule_id]


def test_a_late_event_for_an_older_version_is_judged_on_that_version(
    moto_aws: Aws, settings: Settings, service: TriggerService
) -> None:
    AnalyticsRepository(settings.analytics_table).put_rule(rule("environment"))
    old = publish(moto_aws, settings, "air", "environment", 1, readings(90.0))
    new = publish(moto_aws, settings, "air", "environment", 2, readings(20.0))
    assert service.evaluate_rules(new) == []
    late = service.evaluate_rules(old)
    assert [a.version for a in late] == [1]


def test_a_rule_stops_when_its_grant_ends_and_the_refusal_is_audited(
    moto_aws: Aws, settings: Settings, service: TriggerService
) -> None:
    sharing = SharingRepository(settings.sharing_table)
    grant = Grant.model_validate(
        {
            "grant_id": "g" + "2" * 24,
            "dataset_id": "air",
            "owner": "environment",
            "grantee_department": "health",
            "purpose": "Health watches pollution peaks",
            "purpose_category": "public-health",
            "created_by": "steward",
            "created_at": "t",
        }
    )
    sharing.put_grant(grant)
    AnalyticsRepository(settings.analytics_table).put_rule(rule("health", grant.grant_id))
    event = publish(moto_aws, settings, "air", "environment", 1, readings(90.0))
    assert len(service.evaluate_rules(event)) == 1
    sharing.revoke(grant, "steward", "2026-11-26T00:00:00+00:00")
    event2 = publish(moto_aws, settings, "air", "environment", 2, readings(95.0))
    assert service.evaluate_rules(event2) == []
    from functions.audit.chain import AuditLog

    reads = [e for e in AuditLog(settings.audit_table).read("environment") if e.action == "ReadData"]
    assert [(e.actor_department, e.decision) for e in reads] == [("health", "allow"), ("health", "deny")]


def test_duplicate_and_out_of_order_events_build_a_derived_version_once_per_input_versions(
    moto_aws: Aws, settings: Settings, service: TriggerService
) -> None:
    first = publish(moto_aws, settings, "air", "environment", 1, readings(90.0))
    define_derived(
        settings,
        "air-hourly",
        "Hourly",
        "SELECT district, avg(pm25) AS pm25 FROM air GROUP BY district",
        {"district": "VARCHAR", "pm25": "DOUBLE"},
    )
    assert service.rebuild_derived(first) == ["air-hourly"]
    assert service.rebuild_derived(first) == []  # the same input versions: nothing new
    second = publish(moto_aws, settings, "air", "environment", 2, readings(20.0))
    assert service.rebuild_derived(second) == ["air-hourly"]
    assert service.rebuild_derived(first) == []  # late: the latest inputs were already built
    listed = moto_aws.client("s3").list_objects_v2(Bucket=settings.data_bucket, Prefix="landing/environment/air-hourly/")
    bodies = [
        moto_aws.client("s3").get_object(Bucket=settings.data_bucket, Key=o["Key"])["Body"].read().decode()
        for o in listed["Contents"]
    ]
    assert len(bodies) == 2 and all(b.startswith("district,pm25\n") for b in bodies)
    uploads = IngestRepository(settings.catalog_table)
    recorded = {tuple(uploads.get_upload("air-hourly", o["Key"].split("/")[3]).inputs) for o in listed["Contents"]}  # type: ignore[union-attr]
    assert recorded == {("air@1",), ("air@2",)}
    assert json.loads(json.dumps(sorted(recorded))) == [["air@1"], ["air@2"]]


def test_a_subscription_stops_delivering_when_its_grant_ends(moto_aws: Aws, settings: Settings, service: TriggerService) -> None:
    provision_departments("logistics")  # a subscriber acts as the principal that subscribed: it must exist
    sharing = SharingRepository(settings.sharing_table)
    grants = {}
    for grantee in ("health", "logistics"):
        grants[grantee] = Grant.model_validate(
            {
                "grant_id": "g" + str(len(grants) + 3) * 24,
                "dataset_id": "air",
                "owner": "environment",
                "grantee_department": grantee,
                "purpose": "Following air quality",
                "purpose_category": "public-health",
                "created_by": "steward",
                "created_at": "t",
            }
        )
        sharing.put_grant(grants[grantee])
    analytics = AnalyticsRepository(settings.analytics_table)
    for number, (department, dataset_id, tag) in enumerate(
        (("health", "air", None), ("logistics", None, "air"), ("transport", None, "air")), 1
    ):
        analytics.put_subscription(
            Subscription(
                subscription_id="s" + str(number) * 24,
                department=department,
                dataset_id=dataset_id,
                tag=tag,
                kinds=["versions"],
                created_by="p",
                created_at="t",
            ),
            None,
        )
    inbox = NotificationRepository(settings.notifications_table)

    def told(department: str) -> int:
        return len(inbox.page(department, None, 10))

    service.handle(publish(moto_aws, settings, "air", "environment", 1, readings(10.0), tags=["air"]))
    assert (told("health"), told("logistics"), told("transport")) == (1, 1, 0)  # transport may not read it
    sharing.revoke(grants["health"], "steward", "2026-11-26T00:00:00+00:00")
    service.handle(publish(moto_aws, settings, "air", "environment", 2, readings(10.0), tags=["air"]))
    assert (told("health"), told("logistics"), told("transport")) == (1, 2, 0)  # health's grant ended


def test_a_derived_dataset_is_built_once_after_its_definition_without_waiting_for_a_new_input_version(
    moto_aws: Aws, settings: Settings, service: TriggerService
) -> None:
    analytics = AnalyticsRepository(settings.analytics_table)
    publish(moto_aws, settings, "air", "environment", 1, readings(90.0))
    define_derived(settings, "air-by-district", "By district", "SELECT DISTINCT district FROM air", {"district": "VARCHAR"})
    assert analytics.first_builds_owed() == ["air-by-district"]
    assert service.sweep_first_builds() == ["air-by-district"]  # from air@1, which came before the definition
    assert analytics.first_builds_owed() == [] and service.sweep_first_builds() == []
    listed = moto_aws.client("s3").list_objects_v2(Bucket=settings.data_bucket, Prefix="landing/environment/air-by-district/")
    assert listed["KeyCount"] == 1


def define_derived(settings: Settings, dataset_id: str, title: str, sql: str, columns: dict[str, str]) -> None:
    """A derived dataset of environment's over `air`, its catalog entry and its definition (as the
    analytics function writes them)."""
    types = {"VARCHAR": ["string", "null"], "DOUBLE": ["number", "null"]}
    CatalogRepository(settings.catalog_table).create(
        Dataset.model_validate(
            {
                "dataset_id": dataset_id,
                "title": title,
                "classification": "internal",
                "schema": {"type": "object", "properties": {name: {"type": types[kind]} for name, kind in columns.items()}},
                "owner": "environment",
                "created_at": "t",
                "updated_at": "t",
                "created_by": "p",
            }
        )
    )
    AnalyticsRepository(settings.analytics_table).put_derived(
        DerivedDataset(
            dataset_id=dataset_id,
            title=title,
            inputs=["air"],
            sql=sql,
            owner="environment",
            classification="internal",
            created_by="p",
            created_at="t",
            columns=columns,
        )
    )
