"""One decision path (issue: One decision path), as a matrix: every way access ends or narrows, on
every path that reads for a department. Environment owns `air`; health's principal `p` holds a grant
on it and, through it, reads it (API and view), queries it over Delta Sharing, has an alert rule, a
derived dataset and a subscription (inbox, SNS, webhook) on it. Each condition must stop (or
narrow) every path, and each refusal must be in environment's audit chain with what decided it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.analytics.models import AlertRule, DerivedDataset, Subscription
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.triggers import TriggerService
from functions.audit.chain import AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.errors import Forbidden, NotFound
from functions.core.settings import Settings
from functions.handlers import delta_sharing, services, triggers, wiring
from functions.identity.directory import DirectoryRepository
from functions.policy.actors import Actors
from functions.sharing.models import Grant, GrantTerms
from functions.sharing.recipients import RecipientRepository, ShareReader, ShareRecipient, token_digest
from functions.sharing.repository import SharingRepository
from tests.integration.conftest import Aws
from tests.integration.test_analytics_triggers import START, publish

OWNER, GRANTEE = "environment", "health"
NARROWED = GrantTerms.model_validate(
    {
        "columns": ["station_id", "district", "measured_at", "pm25"],
        "row_filter": {"condition": {"column": "district", "op": "eq", "value": "Centre"}},
    }
)


def rows() -> list[dict[str, Any]]:
    """Two stations over the threshold: one in the Centre, one in the Harbour."""
    return [
        {"station_id": station, "district": district, "measured_at": START + dt.timedelta(minutes=10 * i), "pm25": 90.0}
        for station, district in (("AQ-1", "Centre"), ("AQ-2", "Harbour"))
        for i in range(6)
    ]


def grant(terms: GrantTerms | None = None, grant_id: str = "g" + "7" * 24) -> Grant:
    return Grant.model_validate(
        {
            "grant_id": grant_id,
            "dataset_id": "air",
            "owner": OWNER,
            "grantee_department": GRANTEE,
            "purpose": "Health watches pollution peaks",
            "purpose_category": "public-health",
            "created_by": "steward",
            "created_at": "2026-11-01T00:00:00+00:00",
            "terms": (terms or GrantTerms()).model_dump(),
        }
    )


class City:
    """Health's paths onto environment's `air`, each asked afresh."""

    def __init__(self, moto_aws: Aws, settings: Settings, posted: list[dict[str, Any]]) -> None:
        self.aws, self.settings, self.posted = moto_aws, settings, posted
        self.directory = DirectoryRepository(settings.directory_table)
        self.sharing = SharingRepository(settings.sharing_table)
        self.analytics = AnalyticsRepository(settings.analytics_table)
        self.version = 0

    def new_version(self) -> Any:
        self.version += 1
        return publish(self.aws, self.settings, "air", OWNER, self.version, rows())

    def actor(self) -> Any:
        return Actors(self.directory).of(GRANTEE, "p")

    def triggers(self) -> TriggerService:
        triggers.triggers.cache_clear()
        service = triggers.triggers()
        service._notifications._post_webhook = lambda url, secret, payload: bool(self.posted.append(payload)) or True
        return service

    # -- the paths: each returns what health got (None: refused)
    def api_read(self) -> Any:
        try:
            return services.sharing().read(self.actor(), "air", None, None)
        except (NotFound, Forbidden):
            return None

    def view_read(self, grant_id: str) -> Any:
        try:
            return services.sharing().read(self.actor(), "air", None, grant_id)
        except (NotFound, Forbidden):
            return None

    def delta_table(self) -> Any:
        """The table a Delta Sharing query or metadata request reads, as the recipient sees it (or None)."""
        # A token the owner issued to the department, checked (with the department's status now) by
        # the table lookup itself, as every Delta Sharing request is.
        recipient_id, token = "s" + "1" * 24, "s" + "1" * 24 + ".the-recipient-secret"
        if RecipientRepository(self.settings.sharing_table).get(recipient_id) is None:
            RecipientRepository(self.settings.sharing_table).put(
                ShareRecipient(
                    recipient_id=recipient_id,
                    owner=OWNER,
                    department=GRANTEE,
                    created_by="steward",
                    created_at="2026-01-01T00:00:00Z",
                    expires_at="2999-01-01T00:00:00Z",
                ),
                token_digest(token),
            )
        reader = ShareReader(recipient_id=recipient_id, owner=OWNER, department=GRANTEE, token_sha256=token_digest(token))
        try:
            return delta_sharing.delta_sharing().table(reader, OWNER, "default", "air")
        except NotFound:
            return None

    def rule_alerts(self, event: Any) -> list[Any]:
        return self.triggers().evaluate_rules(event)

    def derived(self, event: Any) -> list[str]:
        return self.triggers().rebuild_derived(event)

    def deliveries(self, event: Any) -> tuple[list[Any], list[Any]]:
        self.posted.clear()
        self.triggers().handle(event)
        inbox = services.inbox()._repository.page(GRANTEE, None, 100)
        return [n for n in inbox if n.subject.get("version") == event.version], list(self.posted)

    def last_refusal(self) -> Any:
        entries = AuditLog(self.settings.audit_table).read(OWNER, limit=1000)
        return [e for e in entries if e.actor_department == GRANTEE and e.decision == "deny"][-1]


@pytest.fixture
def city(moto_aws: Aws, settings: Settings) -> Iterator[City]:
    posted: list[dict[str, Any]] = []
    made = City(moto_aws, settings, posted)
    CatalogRepository(settings.catalog_table).create(
        Dataset.model_validate(
            {
                "dataset_id": "health-air",
                "title": "Air where health watches",
                "classification": "internal",
                "schema": {
                    "type": "object",
                    "properties": {"station_id": {"type": ["string", "null"]}, "pm25": {"type": ["number", "null"]}},
                },
                "owner": GRANTEE,
                "created_at": "t",
                "updated_at": "t",
                "created_by": "p",
            }
        )
    )
    made.analytics.put_derived(
        DerivedDataset(
            dataset_id="health-air",
            title="Air where health watches",
            inputs=["air"],
            sql="SELECT station_id, max(pm25) AS pm25 FROM air GROUP BY station_id",
            owner=GRANTEE,
            classification="internal",
            created_by="p",
            created_at="t",
            columns={"station_id": "VARCHAR", "pm25": "DOUBLE"},
        )
    )
    made.analytics.put_rule(
        AlertRule.model_validate(
            {
                "name": "PM2.5 hourly mean above 75",
                "measure": {"aggregate": "mean", "column": "pm25"},
                "group_by": ["station_id"],
                "window": {"column": "measured_at", "minutes": 60},
                "comparison": "gt",
                "threshold": 75,
                "rule_id": "x" + "9" * 24,
                "dataset_id": "air",
                "owner": GRANTEE,
                "created_by": "p",
                "created_at": "t",
            }
        )
    )
    made.analytics.put_subscription(
        Subscription(
            subscription_id="s" + "9" * 24,
            department=GRANTEE,
            dataset_id="air",
            kinds=["versions"],
            webhook_url="https://health.example/hook",
            created_by="p",
            created_at="t",
        ),
        "secret",
    )
    for builder in (services.sharing, services.catalog, delta_sharing.delta_sharing, services.inbox):
        builder.cache_clear()
    yield made


def suspend_department(city: City) -> str:
    city.directory.set_department_status(GRANTEE, "suspended")
    return "suspended-department"


def suspend_principal(city: City) -> str:
    city.directory.set_principal_status(GRANTEE, "p", "suspended")
    return "suspended-principal"


def retire_key(city: City) -> str:
    city.directory.retire_key(GRANTEE, f"{GRANTEE}-p")
    return "principal-without-keys"


def revoke_grant(city: City) -> str:
    city.sharing.revoke(grant(), "steward", "2026-11-26T00:00:00+00:00")
    return "no-permit"


def expire_grant(city: City) -> str:
    city.sharing.revoke(grant(), "steward", "2026-11-26T00:00:00+00:00")
    city.sharing.put_grant(grant(GrantTerms(expires_at="2026-11-30T00:00:00+00:00"), grant_id="g" + "8" * 24))
    return "no-permit"


REFUSALS: dict[str, Callable[[City], str]] = {
    "suspended department": suspend_department,
    "suspended principal": suspend_principal,
    "retired key": retire_key,
    "revoked grant": revoke_grant,
    "expired grant": expire_grant,
}
# A recipient token stands for a department (issued by the owner's stewards, revoked on its own): a
# principal's suspension or keys have no bearing on it.
DEPARTMENT_WIDE = {"suspended principal", "retired key"}


@pytest.mark.parametrize("condition", list(REFUSALS))
def test_each_ending_stops_every_path_and_is_audited_with_what_decided(city: City, condition: str) -> None:
    city.sharing.put_grant(grant())
    before = city.new_version()
    assert city.api_read() is not None and city.rule_alerts(before) and city.derived(before)  # it all works first
    decided = REFUSALS[condition](city)
    event = city.new_version()
    expected = (
        (lambda entry: entry.reason == "no-permit") if decided == "no-permit" else (lambda entry: decided in entry.policies)
    )

    assert city.api_read() is None
    assert expected(city.last_refusal()), city.last_refusal()
    assert city.view_read(grant().grant_id) is None
    if condition not in DEPARTMENT_WIDE:
        assert city.delta_table() is None
    assert city.rule_alerts(event) == []
    assert expected(city.last_refusal()), city.last_refusal()
    assert city.derived(event) == []
    assert expected(city.last_refusal()), city.last_refusal()
    told, posted = city.deliveries(event)
    assert told == [] and posted == []
    assert expected(city.last_refusal()), city.last_refusal()


def test_a_narrowed_grant_narrows_every_path(city: City) -> None:
    narrowed = grant(NARROWED)
    city.sharing.put_grant(narrowed)
    event = city.new_version()
    access = city.api_read()
    assert access.restricted and access.columns == NARROWED.columns and access.grant_id == narrowed.grant_id
    assert city.view_read(narrowed.grant_id).restricted
    table = city.delta_table()
    assert table is not None and table.grants == (narrowed.grant_id,) and table.dataset.latest_version == event.version
    alerts = city.rule_alerts(event)
    assert {a.group["station_id"] for a in alerts} == {"AQ-1"}  # the Harbour station is outside the grant's rows
    assert city.derived(event) == ["health-air"]
    landed = city.aws.client("s3").list_objects_v2(Bucket=city.settings.data_bucket, Prefix="landing/health/health-air/")
    bodies = [
        city.aws.client("s3").get_object(Bucket=city.settings.data_bucket, Key=o["Key"])["Body"].read()
        for o in landed["Contents"]
    ]
    assert bodies and all(b"AQ-2" not in body for body in bodies)
    told, posted = city.deliveries(city.new_version())
    assert len(told) == 1 and len(posted) == 1  # told of new versions: a narrowed grant still reads the dataset


def test_reinstating_restores_every_path(city: City) -> None:
    city.sharing.put_grant(grant())
    suspend_principal(city)
    assert city.api_read() is None
    city.directory.set_principal_status(GRANTEE, "p", "active")
    event = city.new_version()
    assert city.api_read() is not None and city.rule_alerts(event) and city.derived(event)
    assert wiring.directory() is not None  # the handlers' own directory sees the same records
