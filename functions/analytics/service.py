"""Alert rules, subscriptions, derived datasets and lineage, each behind the same policies and audit
as every other operation. A rule or a derived dataset reads under the definer's grant, checked now
and again each time it runs."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from functions.analytics.athena import AthenaRunner, forecast_windows
from functions.analytics.destinations import UnsafeDestination, check_destination
from functions.analytics.models import (
    Alert,
    AlertRule,
    AlertRuleCreate,
    Backtest,
    CreatedSubscription,
    DerivedDataset,
    DerivedDatasetCreate,
    Indicator,
    Lineage,
    LineageEdge,
    PlaceJoin,
    Subscription,
    SubscriptionCreate,
)
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.scope import ReadScope, scope_for, table_name
from functions.catalog.models import Dataset, DatasetCreate
from functions.catalog.service import CatalogService
from functions.core.classification import CLASSIFICATION_RANK
from functions.core.clock import utc_now
from functions.core.errors import Forbidden, InvalidRequest, NotFound, QueryFailed
from functions.core.idempotency import AlreadyCommitted
from functions.identity.models import Caller
from functions.ingest.repository import IngestRepository
from functions.policy.access import AccessControl
from functions.sharing.repository import SharingRepository

MAX_DERIVED_DEPTH = 10
NO_ATHENA = "Athena is not available in this deployment (the embedded stack runs DuckDB only)"
_NUMERIC_TYPES = {"DOUBLE", "FLOAT", "REAL", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"}
_RESULT_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date-time": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
}


class AnalyticsService:
    def __init__(
        self,
        catalog: CatalogService,
        repository: AnalyticsRepository,
        versions: IngestRepository,
        access: AccessControl,
        grants: SharingRepository,
        allow_http_webhooks: bool = False,
        athena: AthenaRunner | None = None,
        clock: Callable[[], str] = utc_now,
        history: Callable[[list[str]], AbstractContextManager[list[Path]]] | None = None,
        query_catalog: str = "",
    ) -> None:
        self._athena = athena  # None: no Athena here (the embedded stack)
        self._query_catalog = query_catalog
        self._history = history  # the curated files of a version, as local copies (a forecast's backtest)
        self._catalog = catalog
        self._repository = repository
        self._versions = versions
        self._access = access
        self._grants = grants
        self._allow_http = allow_http_webhooks
        self._clock = clock

    # -- reading under a grant
    def readable(self, caller: Caller, dataset_id: str, purpose: str, request_id: str) -> tuple[Dataset, ReadScope]:
        """The dataset and what the caller may read of it; audited as a ReadData decision."""
        dataset = self._catalog.load(dataset_id)
        candidates = (
            [] if dataset.owner == caller.department_id else self._grants.grants_between(dataset.owner, caller.department_id)
        )
        grant = self._catalog.require(caller, "ReadData", dataset, candidates, purpose=purpose, request_id=request_id)
        return dataset, scope_for(dataset, grant)

    def _typed(self, dataset: Dataset, scope: ReadScope) -> ReadScope:
        """The scope with DuckDB column types: from the latest version's Parquet, else from the schema."""
        from functions.analytics.engine import declared_type, duckdb_type  # DuckDB only where a query is checked

        stored: dict[str, str] = {}
        if dataset.latest_version:
            stored = self._versions.get_version(dataset.dataset_id, dataset.latest_version).output_schema
        types = {}
        for name in dataset.table_schema.stored_columns():
            if name in stored:
                types[name] = duckdb_type(stored[name])
                continue
            types[name] = declared_type(dataset.table_schema.properties[name])
        return scope.typed(types)

    # -- alert rules
    def define_rule(self, caller: Caller, dataset_id: str, request: AlertRuleCreate, request_id: str = "") -> AlertRule:
        dataset, scope = self.readable(caller, dataset_id, "alert-rule", request_id)
        check_rule(request, dataset, scope)
        rule = AlertRule(
            **request.model_dump(),
            rule_id="x" + secrets.token_hex(12),
            dataset_id=dataset_id,
            owner=caller.department_id,
            created_by=caller.principal_id,
            created_at=self._clock(),
            grant_id=scope.grant_id,
        )
        if rule.forecast is not None:
            rule = rule.model_copy(update={"backtest": self._backtest(rule, dataset, scope)})
        try:
            self._repository.put_rule(rule)
        except AlreadyCommitted as earlier:  # a retried call: the rule its first call defined
            return AlertRule.model_validate_json(earlier.result)
        return rule

    def _backtest(self, rule: AlertRule, dataset: Dataset, scope: ReadScope) -> Backtest | None:
        """A forecast rule run over the latest version's history as its definer may read it (None
        before the dataset's first version): its windows reduced by Athena for engine athena."""
        assert rule.forecast is not None
        if rule.forecast.engine == "athena" and self._athena is None:
            raise InvalidRequest(NO_ATHENA)
        if not dataset.latest_version or not dataset.latest_files:
            return None
        # DuckDB only where a rule is defined
        from functions.analytics.engine import Input, backtest_files, backtest_series, group_types

        if self._athena is not None and rule.forecast.engine == "athena":
            # One budget for Athena's reduction and the fit: the backtest answers within the API's 29 s.
            deadline = time.monotonic() + rule.forecast.max_seconds
            with tempfile.TemporaryDirectory(prefix="cityshare-windows-") as folder:
                try:
                    windows = forecast_windows(
                        self._athena,
                        rule,
                        self._query_catalog,
                        dataset,
                        scope,
                        dataset.latest_version,
                        dataset.latest_files,
                        Path(folder) / "windows.csv",
                        rule.forecast.max_seconds,
                    )
                    left = max(deadline - time.monotonic(), 0.5)
                    return backtest_series(rule, windows, group_types(rule, dataset, scope), dataset.latest_version, left)
                except TimeoutError:
                    raise InvalidRequest(
                        f"Athena did not reduce the history to windows within the rule's {rule.forecast.max_seconds} seconds "
                        "(max_seconds)"
                    ) from None
                except QueryFailed as failed:
                    raise InvalidRequest(f"The forecast's backtest failed on the history: {failed}") from None
        if self._history is None:
            return None
        with self._history(dataset.latest_files) as files:
            return backtest_files(rule, Input("data", scope, files, dataset.latest_version))

    def rules(self, caller: Caller, dataset_id: str, request_id: str = "") -> list[AlertRule]:
        """The caller department's rules on the dataset; the owner's stewards see every rule on it."""
        dataset = self._catalog.authorized(caller, "ViewDataset", dataset_id, request_id, {"list": "alert-rules"})
        every = dataset.owner == caller.department_id and caller.is_steward
        return [r for r in self._repository.rules_of(dataset_id) if every or r.owner == caller.department_id]

    def delete_rule(self, caller: Caller, dataset_id: str, rule_id: str, request_id: str = "") -> AlertRule:
        for rule in self.rules(caller, dataset_id, request_id):
            if rule.rule_id == rule_id and rule.owner == caller.department_id:
                self._repository.delete_rule(rule)
                return rule
        raise NotFound(f"Your department has no rule {rule_id} on {dataset_id}")

    def alerts(self, caller: Caller, dataset_id: str, request_id: str = "") -> list[Alert]:
        """Alerts of the caller department's rules (every alert, for the owner): a rule reads under its
        definer's grant, so another department's alerts could show rows outside the caller's."""
        dataset, _ = self.readable(caller, dataset_id, "alerts", request_id)
        everything = dataset.owner == caller.department_id
        mine = {r.rule_id for r in self._repository.rules_of(dataset_id) if everything or r.owner == caller.department_id}
        return [a for a in self._repository.alerts_of(dataset_id) if a.rule_id in mine]

    # -- subscriptions
    def subscribe(self, caller: Caller, request: SubscriptionCreate, request_id: str = "") -> CreatedSubscription:
        self._access.require_own_inbox(caller)  # subscriptions feed the department's inbox
        if request.dataset_id is not None:
            self.readable(caller, request.dataset_id, "subscription", request_id)
        url = str(request.webhook_url) if request.webhook_url else None
        if url:
            try:  # an IP literal is judged now; a name again before each delivery, once resolved
                check_destination(url, allow_private=self._allow_http, resolve=False)
            except UnsafeDestination as refused:
                raise InvalidRequest(str(refused)) from None
        secret = secrets.token_urlsafe(32) if url else None
        subscription = Subscription(
            subscription_id="s" + secrets.token_hex(12),
            department=caller.department_id,
            dataset_id=request.dataset_id,
            tag=request.tag,
            kinds=list(request.kinds),
            webhook_url=url,
            created_by=caller.principal_id,
            created_at=self._clock(),
        )
        created = CreatedSubscription(**subscription.model_dump(), webhook_secret=secret)
        try:
            self._repository.put_subscription(subscription, secret, created.model_dump_json())
        except AlreadyCommitted as earlier:  # a retried call: the subscription (and secret) its first call made
            return CreatedSubscription.model_validate_json(earlier.result)
        return created

    def subscriptions(self, caller: Caller) -> list[Subscription]:
        self._access.require_own_inbox(caller)
        return self._repository.subscriptions_of(caller.department_id)

    def unsubscribe(self, caller: Caller, subscription_id: str) -> Subscription:
        self._access.require_own_inbox(caller)
        return self._repository.delete_subscription(caller.department_id, subscription_id)

    # -- derived datasets
    def define_derived(self, caller: Caller, request: DerivedDatasetCreate, request_id: str = "") -> DerivedDataset:
        from functions.analytics.engine import Input, guard_tables, json_schema_type, result_columns, sandbox

        if request.dataset_id in request.inputs:
            raise InvalidRequest("A derived dataset cannot be its own input")
        for source in request.inputs:
            if request.dataset_id in self._upstream(source, MAX_DERIVED_DEPTH):
                raise InvalidRequest(f"{source} is itself derived from {request.dataset_id}: that would loop")
        if request.engine == "athena" and self._athena is None:
            raise InvalidRequest(NO_ATHENA)
        readable = []
        for source in request.inputs:
            dataset, scope = self.readable(caller, source, "derived-dataset", request_id)
            readable.append((dataset, self._typed(dataset, scope)))
        check_places(request.places, {d.dataset_id: (d, scope) for d, scope in readable})
        # The query may read its inputs only (and only what the grants allow of them, below).
        guard_tables(request.sql, {table_name(d.dataset_id) for d, _ in readable} | {p.table for p in request.places})
        if request.engine == "athena":
            celled = [d.dataset_id for d, scope in readable if scope.aggregate is not None and scope.aggregate.cells is not None]
            if celled:
                raise InvalidRequest(f"{', '.join(celled)} is read as H3 cells, which the duckdb engine computes (not Athena)")
            columns = {name: _RESULT_TYPES[kind] for name, kind in (request.result_columns or {}).items()}
            with sandbox([Input(table_name(d.dataset_id), scope, []) for d, scope in readable]) as connection:
                try:
                    result_columns(connection, request.sql)
                except InvalidRequest as refused:
                    # Athena SQL need not be DuckDB SQL; but a column outside the grant is refused either way.
                    if "Referenced column" in str(refused):
                        raise
        else:
            # Checked against empty tables shaped like what the caller may read: nothing outside is reachable.
            try:
                with sandbox([Input(table_name(d.dataset_id), scope, []) for d, scope in readable], request.places) as connection:
                    columns = result_columns(connection, request.sql)
            except QueryFailed as failed:
                raise InvalidRequest(f"The place joins cannot be made of these inputs: {failed}") from None
        invalid = [c for c in columns if not _column_name(c)]
        if invalid:
            raise InvalidRequest(f"Name every result column with an alias of [a-z][a-z0-9_]*: {', '.join(invalid)}")
        if request.indicator is not None:
            check_indicator(request.indicator, columns)
        classification = max((d.classification for d, _ in readable), key=lambda c: CLASSIFICATION_RANK[c])
        schema = {"type": "object", "properties": {name: json_schema_type(kind) for name, kind in columns.items()}}
        derived = DerivedDataset(
            **request.model_dump(),
            owner=caller.department_id,
            classification=classification,
            created_by=caller.principal_id,
            created_at=self._clock(),
            columns=columns,
        )
        # The dataset and its definition are written together: never one without the other.
        self._catalog.create(
            caller,
            DatasetCreate.model_validate(
                {
                    "dataset_id": request.dataset_id,
                    "title": request.title,
                    "description": request.description or f"Derived from {', '.join(request.inputs)}",
                    "tags": sorted({*request.tags, "derived", *(["indicator"] if request.indicator else [])}),
                    "classification": classification,
                    "schema": schema,
                }
            ),
            request_id,
            classification_floor=classification,
            together_with=self._repository.derived_items(derived),
        )
        return derived

    def _upstream(self, dataset_id: str, depth: int) -> set[str]:
        definition = self._repository.derived(dataset_id)
        if definition is None or depth == 0:
            return set()
        found = set(definition.inputs)
        for source in definition.inputs:
            found |= self._upstream(source, depth - 1)
        return found

    def lineage(self, caller: Caller, dataset_id: str, request_id: str = "") -> Lineage:
        dataset = self._catalog.authorized(caller, "ViewDataset", dataset_id, request_id, {"lineage": True})
        definition = self._repository.derived(dataset_id)
        upstream: list[LineageEdge] = []
        if dataset.latest_version:
            version = self._versions.get_version(dataset_id, dataset.latest_version)
            upstream = [LineageEdge(dataset_id=i.split("@")[0], version=int(i.split("@")[1])) for i in version.inputs]
        if not upstream and definition is not None:
            upstream = [LineageEdge(dataset_id=i) for i in definition.inputs]
        if dataset.owner != caller.department_id:
            # Discovering a derived dataset does not reveal inputs the caller may not see.
            upstream = [edge for edge in upstream if self._catalog.visible(caller, edge.dataset_id) is not None]
        downstream = []
        for output in self._repository.downstream(dataset_id):
            found = self._catalog.visible(caller, output)
            if found is not None:
                downstream.append(LineageEdge(dataset_id=output, version=found.latest_version or None))
        return Lineage(
            dataset_id=dataset_id,
            version=dataset.latest_version or None,
            upstream=upstream,
            downstream=downstream,
            sql=definition.sql if definition and dataset.owner == caller.department_id else None,
        )


def _column_name(name: str) -> bool:
    return bool(name) and name[0].isalpha() and name.islower() and all(c.isalnum() or c == "_" for c in name) and len(name) <= 64


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "UBIGINT", "UINTEGER")


def check_indicator(indicator: Indicator, columns: dict[str, str]) -> None:
    """An indicator names result columns, its value a number."""
    missing = [c for c in indicator.columns() if c not in columns]
    if missing:
        raise InvalidRequest(f"The indicator names columns the query does not return: {', '.join(missing)}")
    if not columns[indicator.value].upper().startswith(_NUMERIC):
        raise InvalidRequest(f"The indicator's value must be a number, not {columns[indicator.value]}")


def check_places(places: list[PlaceJoin], readable: dict[str, tuple[Dataset, ReadScope]]) -> None:
    """Each place join reads columns its definer may read: numbers or GeoJSON points for the points,
    polygons for the areas, and names no column twice."""
    for place in places:
        points, point_scope = readable[place.points]
        areas, area_scope = readable[place.areas]
        point_columns = [c for c in (place.longitude, place.latitude, place.point) if c]
        outside = [f"{place.points}.{c}" for c in point_columns if c not in point_scope.columns]
        outside += [f"{place.areas}.{c}" for c in [place.geometry, *place.area_columns] if c not in area_scope.columns]
        if outside:
            raise InvalidRequest(
                f"The place join {place.table} reads columns you may not read, or that do not exist: {', '.join(outside)}"
            )
        for column in (place.longitude, place.latitude):
            if column and point_scope.column_types.get(column) not in _NUMERIC_TYPES:
                raise InvalidRequest(f"{place.points}.{column} is not a number column: it cannot be a longitude or latitude")
        if place.point and _geometry_types(points, place.point) != {"Point"}:
            raise InvalidRequest(f"{place.points}.{place.point} is not an x-geometry column of Points")
        shapes = _geometry_types(areas, place.geometry)
        if not shapes or not shapes <= {"Polygon", "MultiPolygon"}:
            raise InvalidRequest(f"{place.areas}.{place.geometry} is not an x-geometry column of Polygons or MultiPolygons")
        twice = sorted(set(place.area_columns) & set(point_scope.columns))
        if twice:
            raise InvalidRequest(
                f"The points of {place.table} already have a column named {', '.join(twice)}: leave it out of area_columns"
            )


def _geometry_types(dataset: Dataset, column: str) -> set[str]:
    schema = dataset.table_schema.properties.get(column)
    return set(schema.geometry.types) if schema is not None and schema.geometry is not None else set()


def check_rule(rule: AlertRuleCreate, dataset: Dataset, scope: ReadScope) -> None:
    """A rule may use only columns its reader may read, each fit for its role."""
    properties = dataset.table_schema.properties
    unknown = sorted(rule.columns() - set(scope.columns) - set(properties))
    if unknown:  # a typo, not a refusal: say what there is to read
        raise InvalidRequest(
            f"{dataset.dataset_id} has no column {', '.join(unknown)}; the columns you may read: {', '.join(scope.columns)}"
        )
    outside = sorted(rule.columns() - set(scope.columns))
    if outside:
        raise Forbidden(f"The rule uses columns you may not read on {dataset.dataset_id}: {', '.join(outside)}")
    # An aggregated grant's own columns (group_size, mean_x, ...) are numbers; its cells are text.
    cells = {scope.aggregate.cells.column} if scope.aggregate is not None and scope.aggregate.cells is not None else set()
    numeric = {c for c in scope.columns if c not in properties} - cells
    if rule.measure.column is not None and rule.measure.column not in numeric:
        measured = properties.get(rule.measure.column)
        if measured is None or not {"number", "integer"} & set(measured.kinds()):
            raise InvalidRequest(f"{rule.measure.column} is not numeric; use count, or a numeric column")
    if rule.window is not None:
        windowed = properties.get(rule.window.column)
        if rule.window.column in numeric or windowed is None or windowed.format != "date-time":
            raise InvalidRequest(f"The window column {rule.window.column} must be a date-time column")
