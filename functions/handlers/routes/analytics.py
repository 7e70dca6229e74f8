"""Analytics routes: alert rules, raised alerts, subscriptions, derived datasets and lineage."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.analytics.models import (
    Alert,
    AlertRule,
    AlertRuleCreate,
    CreatedSubscription,
    DerivedDataset,
    DerivedDatasetCreate,
    Lineage,
    RuleList,
    Subscription,
    SubscriptionCreate,
    SubscriptionList,
)
from functions.core.model import Model
from functions.handlers.routes.context import DatasetPath, caller, created, documented, request_id
from functions.handlers.services import analytics

router = APIGatewayRouter()

RulePath = Annotated[str, Path(pattern=r"^x[0-9a-f]{24}$")]
SubscriptionPath = Annotated[str, Path(pattern=r"^s[0-9a-f]{24}$")]


class AlertList(Model):
    alerts: list[Alert]


@router.post(
    "/datasets/<dataset_id>/alert-rules",
    summary="Define a threshold alert rule on a dataset you may read",
    tags=["analytics"],
    responses=documented(AlertRule, 400, 403, 404, status=201),
)
def define_rule(dataset_id: DatasetPath, request: AlertRuleCreate) -> Response[AlertRule]:
    return created(analytics().define_rule(caller(router), dataset_id, request, request_id(router)))


@router.get(
    "/datasets/<dataset_id>/alert-rules",
    summary="Your department's rules on a dataset (every rule, for the owner's stewards)",
    tags=["analytics"],
    responses=documented(RuleList, 403, 404),
)
def rules(dataset_id: DatasetPath) -> RuleList:
    return RuleList(rules=analytics().rules(caller(router), dataset_id, request_id(router)))


@router.delete(
    "/datasets/<dataset_id>/alert-rules/<rule_id>",
    summary="Delete one of your department's rules",
    tags=["analytics"],
    responses=documented(AlertRule, 403, 404),
)
def delete_rule(dataset_id: DatasetPath, rule_id: RulePath) -> AlertRule:
    return analytics().delete_rule(caller(router), dataset_id, rule_id, request_id(router))


@router.get(
    "/datasets/<dataset_id>/alerts",
    summary="Alerts raised on a dataset you may read",
    tags=["analytics"],
    responses=documented(AlertList, 403, 404),
)
def alerts(dataset_id: DatasetPath) -> AlertList:
    return AlertList(alerts=analytics().alerts(caller(router), dataset_id, request_id(router)))


@router.post(
    "/subscriptions",
    summary="Be told of new versions (or alerts) of a dataset you may read, or of datasets with a tag",
    tags=["analytics"],
    responses=documented(CreatedSubscription, 400, 403, 404, status=201),
)
def subscribe(request: SubscriptionCreate) -> Response[CreatedSubscription]:
    return created(analytics().subscribe(caller(router), request, request_id(router)))


@router.get(
    "/subscriptions", summary="Your department's subscriptions", tags=["analytics"], responses=documented(SubscriptionList)
)
def subscriptions() -> SubscriptionList:
    return SubscriptionList(subscriptions=analytics().subscriptions(caller(router)))


@router.delete(
    "/subscriptions/<subscription_id>",
    summary="Stop a subscription",
    tags=["analytics"],
    responses=documented(Subscription, 404),
)
def unsubscribe(subscription_id: SubscriptionPath) -> Subscription:
    return analytics().unsubscribe(caller(router), subscription_id)


@router.post(
    "/derived-datasets",
    summary="Define a dataset computed by SQL over datasets you may read; rebuilt when an input changes",
    tags=["analytics"],
    responses=documented(DerivedDataset, 400, 403, 404, 409, status=201),
)
def define_derived(request: DerivedDatasetCreate) -> Response[DerivedDataset]:
    return created(analytics().define_derived(caller(router), request, request_id(router)))


@router.get(
    "/datasets/<dataset_id>/lineage",
    summary="Where a dataset's latest version came from, and what is derived from it",
    tags=["analytics"],
    responses=documented(Lineage, 403, 404),
)
def lineage(dataset_id: DatasetPath) -> Lineage:
    return analytics().lineage(caller(router), dataset_id, request_id(router))
