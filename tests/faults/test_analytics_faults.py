"""Defining a forecast rule, and subscribing, through the analytics function under every fault at
every AWS call, the backtest's copy of the version's files from S3 among them: the client retries
with its Idempotency-Key, as the SDK does, until answered; whatever failed where, there is one rule
(with its backtest) or one subscription, the one answered, with the webhook secret answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from functions.analytics.repository import AnalyticsRepository
from functions.core.settings import Settings
from functions.handlers import services, wiring
from tests.faults.conftest import RENEW_EVERY
from tests.faults.harness import REFUSED_ALIKE, FaultInjector, plan
from tests.faults.scenario import NUMBERS, record
from tests.faults.test_sharing_faults import ApiRun
from tests.forecast_data import daily_peaks, forecast_rule
from tests.integration.conftest import Aws
from tests.integration.test_analytics_triggers import publish

OWNER = ("environment", "analyst", "member")
RULE = forecast_rule(6)


class RulesRun(ApiRun):
    function = "analytics"

    def renew(self, settings: Settings) -> None:
        super().renew(settings)
        self.rules = AnalyticsRepository(settings.analytics_table, self.aws.client("dynamodb"))

    def fresh(self) -> str:
        """A new dataset with a published version, and services built afresh (a stopped function's
        warm state dies with it)."""
        for builder in (services.access_control, services.catalog, services.sharing_repository, services.analytics):
            builder.cache_clear()
        for made in (wiring.audit_log, wiring.scopes):
            made.cache_clear()
        dataset_id = f"air-{next(NUMBERS):04d}"
        publish(self.aws, self.settings, dataset_id, "environment", 1, daily_peaks(), tags=[])
        return dataset_id

    def define(self, dataset_id: str, fault: tuple[int, str] | None) -> tuple[Any, list[int]]:
        answered, statuses = self.client.call(OWNER, "POST", f"/datasets/{dataset_id}/alert-rules", RULE, fault)
        return answered, statuses


def test_a_forecast_rule_is_defined_once_with_its_backtest_under_every_fault(
    moto_aws: Aws,
    settings: Settings,
    injector: FaultInjector,
    monkeypatch: pytest.MonkeyPatch,
    atomic_conditional_writes: None,
    renew_tables: Callable[[], Settings],
) -> None:
    run = RulesRun(moto_aws, settings, injector, monkeypatch)
    dataset_id = run.fresh()
    injector.reset()
    first, _ = run.define(dataset_id, None)
    calls = list(injector.calls)
    assert any(c.service == "s3" and c.operation == "GetObject" for c in calls), calls  # the backtest's copy
    assert first["backtest"]["origins"] > 0
    runs = 0
    for index, fault in plan(calls, REFUSED_ALIKE):
        runs += 1
        if runs % RENEW_EVERY == 0:
            run.renew(renew_tables())
        dataset_id = run.fresh()
        injector.reset()
        answered, statuses = run.define(dataset_id, (index, fault))
        record("analytics", injector, fault)
        context = f"{fault} at call {index} ({injector.injected}), answers {statuses}"
        stored = run.rules.rules_of(dataset_id)
        assert [r.rule_id for r in stored] == [answered["rule_id"]], f"{context}: rules {stored}"
        assert stored[0].backtest is not None and stored[0].backtest.model_dump() == first["backtest"], context
    assert runs >= 5


def test_a_subscription_is_made_once_under_every_fault(
    moto_aws: Aws,
    settings: Settings,
    injector: FaultInjector,
    monkeypatch: pytest.MonkeyPatch,
    atomic_conditional_writes: None,
) -> None:
    run = RulesRun(moto_aws, settings, injector, monkeypatch)

    def subscribe(dataset_id: str, fault: tuple[int, str] | None) -> tuple[Any, list[int]]:
        body = {"dataset_id": dataset_id, "kinds": ["alerts"], "webhook_url": "https://environment.example/hook"}
        answered, statuses = run.client.call(OWNER, "POST", "/subscriptions", body, fault)
        return answered, statuses

    injector.reset()
    subscribe(run.fresh(), None)
    calls = list(injector.calls)
    for index, fault in plan(calls, REFUSED_ALIKE):
        dataset_id = run.fresh()
        injector.reset()
        answered, statuses = subscribe(dataset_id, (index, fault))
        record("analytics", injector, fault)
        context = f"{fault} at call {index} ({injector.injected}), answers {statuses}"
        stored = run.rules.subscriptions_to(dataset_id, [])
        assert [(s.subscription_id, secret) for s, secret in stored] == [
            (answered["subscription_id"], answered["webhook_secret"])
        ], f"{context}: subscriptions {stored}"
