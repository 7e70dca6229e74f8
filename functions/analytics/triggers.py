"""What landing data sets off: notifications to subscribers (inbox, SNS, signed webhooks), alert rules
evaluated on the new version, derived datasets rebuilt from their inputs' latest versions.

An event is first checked against the catalog (the version, its files, the grant or request it
names, the alerts it announces): what it says is never taken on its word. Then each step runs, one
failing does not stop the others, and the event is delivered again if any failed. Every step is
safe to repeat: notifications are stored once per event and department and pushed once per channel;
a rule's alerts on a version are stored once (ids derived from rule, version and window), marked,
announced in one AlertRaised, then unmarked, and the sweep announces what a dead function left
marked; a derived run's upload id is a hash of its input versions, so a redelivered or late event
changes nothing. Rules and derived queries read under their definer's grant, looked up again each
time: when the grant has ended they stop (and the refusal is audited in the owner's chain).
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.analytics.athena import TIMEOUT_SECONDS, AthenaRunner, forecast_windows, version_input, wrapped
from functions.analytics.files import local_copies
from functions.analytics.models import Alert, AlertRule, DerivedDataset, Subscription
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.scope import ReadScope, scope_for, table_name
from functions.audit.chain import AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.catalog.service import CatalogService
from functions.core.clock import utc_now
from functions.core.errors import InvalidRequest, NotFound, QueryFailed
from functions.core.events import (
    FIRINGS_PER_EVENT,
    AccessRequestChanged,
    AlertRaised,
    DatasetVersionPublished,
    EventDetail,
    EventPublisher,
    Firing,
    GrantChanged,
)
from functions.core.layout import landing_key, owner_of
from functions.core.observability import logger
from functions.core.scoped import DepartmentScopes, sse_kms
from functions.core.settings import Settings
from functions.identity.directory import DepartmentKeys
from functions.ingest.models import Upload, UploadRequest
from functions.ingest.repository import IngestRepository
from functions.notifications.service import NotificationService
from functions.policy.actors import Actors
from functions.policy.engine import Decision
from functions.sharing.models import Grant
from functions.sharing.repository import SharingRepository

if TYPE_CHECKING:
    from functions.analytics import engine  # DuckDB, imported where a rule runs

# Alerts marked this long ago and still unannounced were left by a function that died.
ANNOUNCE_AFTER_SECONDS = 60
# A mark whose alerts are not all stored waits this long for the redelivery that stores them (the
# events queue's attempts span 5 x 30 minutes) before what is stored is announced.
STORE_WAIT_SECONDS = 3 * 3600


class TriggerService:
    def __init__(
        self,
        settings: Settings,
        catalog: CatalogRepository,
        sharing: SharingRepository,
        analytics: AnalyticsRepository,
        uploads: IngestRepository,
        notifications: Callable[
            [Callable[[DatasetVersionPublished], list[str]], Callable[[AlertRaised], list[str]]], NotificationService
        ],
        events: EventPublisher,
        audit: AuditLog,
        datasets: CatalogService,
        actors: Actors,
        athena: AthenaRunner | None = None,
        scopes: DepartmentScopes | None = None,
        department_keys: DepartmentKeys | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._sharing = sharing
        self._analytics = analytics
        self._uploads = uploads
        self._notifications = notifications(self._version_subscribers, self._alert_subscribers)
        self._events = events
        self._audit = audit
        self._policies = datasets
        self._actors = actors
        self._athena = athena
        self._dataset: Dataset | None = None
        self._datasets: dict[str, Dataset | None] | None = None
        self._downloads: dict[str, Path] = {}
        self._folder: Path | None = None
        self._found: dict[str, list[tuple[Subscription, str | None]]] = {}
        self._scopes = scopes or DepartmentScopes("")
        self._department_keys = department_keys
        self._clock = clock

    def handle(self, event: EventDetail) -> None:
        # Each dataset, its subscriptions and each version file are read once per event.
        self._datasets, self._found, self._downloads = {}, {}, {}
        with tempfile.TemporaryDirectory(prefix="cityshare-trigger-") as folder:
            self._folder = Path(folder)
            try:
                self._handle(event)
            finally:
                self._folder, self._downloads, self._datasets = None, {}, None

    def _handle(self, event: EventDetail) -> None:
        checked = self._checked(event)
        if checked is None:
            logger.warning("event ignored: the catalog does not confirm it", extra={"key": event.key()})
            return
        self._dataset = self._get(checked.dataset_id) if isinstance(checked, DatasetVersionPublished | AlertRaised) else None
        steps: list[Callable[[], object]] = [lambda: self._notify(checked)]
        if isinstance(checked, DatasetVersionPublished):
            steps += [lambda: self.evaluate_rules(checked, self._dataset), lambda: self.rebuild_derived(checked)]
        failures = []
        for run in steps:
            try:
                run()
            except Exception as error:  # the others still run; the event comes again for this one
                logger.exception("a step of the event failed", extra={"key": event.key()})
                failures.append(error)
        if failures:
            raise failures[0]

    def _get(self, dataset_id: str) -> Dataset | None:
        """A dataset, read once per event (and afresh outside one)."""
        if self._datasets is None:
            return self._catalog.get(dataset_id)
        if dataset_id not in self._datasets:
            self._datasets[dataset_id] = self._catalog.get(dataset_id)
        return self._datasets[dataset_id]

    def _notify(self, event: EventDetail) -> None:
        """Deduplicated on what the event is about, not on its delivery: the same change put on the
        bus twice (a retry, the outbox sweeper) is told once per department and channel."""
        webhooks: dict[str, tuple[str, str]] = {}
        if isinstance(event, DatasetVersionPublished | AlertRaised):
            kind = "versions" if isinstance(event, DatasetVersionPublished) else "alerts"
            for subscription, secret in self._subscriptions(kind):
                if subscription.webhook_url and secret:
                    webhooks.setdefault(subscription.department, (subscription.webhook_url, secret))
        self._notifications.notify(event.key(), event, webhooks)

    def _checked(self, event: EventDetail) -> EventDetail | None:
        """The event as the catalog confirms it (a version's files are the catalog's), or None."""
        if isinstance(event, DatasetVersionPublished):
            dataset = self._get(event.dataset_id)
            try:
                version = self._uploads.get_version(event.dataset_id, event.version)
            except NotFound:
                return None
            if dataset is None or version.owner != dataset.owner:
                return None
            return DatasetVersionPublished(
                dataset_id=version.dataset_id,
                version=version.version,
                owner=version.owner,
                classification=dataset.classification,
                tags=list(dataset.tags),
                rows=version.rows,
                files=version.files,
                created_at=version.created_at,
                inputs=version.inputs,
            )
        if isinstance(event, AlertRaised):
            stored = [a for a in self._analytics.alerts_of(event.dataset_id, event.version) if a.rule_id == event.rule_id]
            rule = next((r for r in self._analytics.rules_of(event.dataset_id) if r.rule_id == event.rule_id), None)
            dataset = self._get(event.dataset_id)
            if not stored or rule is None or dataset is None:
                return None
            return _alert_raised(stored, rule, dataset.owner, event.raised_at)
        if isinstance(event, GrantChanged):
            grants = self._sharing.grants_between(event.owner, event.grantee_department)
            grant = next((g for g in grants if g.grant_id == event.grant_id), None)
            if grant is None or (event.change == "revoked" and grant.status != "revoked"):
                return None  # (a grant revoked since it was made was still granted)
            return event
        if isinstance(event, AccessRequestChanged):
            try:
                request = self._sharing.get_request(event.dataset_id, event.access_request_id)
            except NotFound:
                return None
            if request.owner != event.owner or (event.change != "filed" and request.status != event.change):
                return None
            return event
        return event

    # -- who is told
    def _subscriptions(self, kind: str) -> list[tuple[Subscription, str | None]]:
        """The subscriptions of `kind` to the dataset of the event being handled whose department may
        still read it."""
        if kind not in self._found:
            dataset = self._dataset
            found = self._analytics.subscriptions_to(dataset.dataset_id, list(dataset.tags)) if dataset else []
            self._found[kind] = [
                (s, secret)
                for s, secret in found
                # An alert's group and value are figures over the rule owner's scope: only departments
                # that read the whole dataset are told of others' alerts.
                if dataset and kind in s.kinds and self._may_read(dataset, s.department, s.created_by, whole=kind == "alerts")
            ]
        return self._found[kind]

    def _version_subscribers(self, event: DatasetVersionPublished) -> list[str]:
        return [s.department for s, _ in self._subscriptions("versions")]

    def _alert_subscribers(self, event: AlertRaised) -> list[str]:
        return [s.department for s, _ in self._subscriptions("alerts")]

    def _may_read(self, dataset: Dataset, department: str, principal: str, whole: bool = False) -> bool:
        """Whether a subscriber (the principal that subscribed, as the directory holds it now) may
        be told: the policies' decision, audited in the owner's chain."""
        decision, grant = self._decide(dataset, department, principal, None, f"subscription/{'alerts' if whole else 'versions'}")
        return decision.allowed and (not whole or grant is None or not grant.needs_view(dataset))

    def _decide(
        self, dataset: Dataset, department: str, principal: str, grant_id: str | None, purpose: str, version: int | None = None
    ) -> tuple[Decision, Grant | None]:
        actor = self._actors.of(department, principal)
        candidates = [] if dataset.owner == department else self._sharing.grants_between(dataset.owner, department)
        details: dict[str, object] = {"version": version} if version is not None else {}
        return self._policies.decide(actor, "ReadData", dataset, candidates, grant_id, purpose, details=details)

    def _scope(
        self, dataset: Dataset, reader: str, principal: str, grant_id: str | None, purpose: str, version: int
    ) -> ReadScope | None:
        """What the principal a rule or derived dataset acts for may read of `dataset` now (None if
        nothing): the policies' decision, audited in the owner's chain with the policies behind it."""
        decision, grant = self._decide(dataset, reader, principal, grant_id, purpose, version)
        private = grant is not None and grant.terms.aggregate is not None and grant.terms.aggregate.privacy is not None
        return scope_for(dataset, grant) if decision.allowed and not private else None

    # -- alert rules
    def evaluate_rules(self, event: DatasetVersionPublished, dataset: Dataset | None = None) -> list[Alert]:
        rules = self._analytics.rules_of(event.dataset_id)
        dataset = dataset or self._catalog.get(event.dataset_id)
        if not rules or dataset is None:
            return []
        from functions.analytics.engine import Input, alert_id, evaluate_files

        raised: list[Alert] = []
        # A forecast reduced by Athena never needs the version's files here: copied only for the others.
        on_files = any(rule.forecast is None or rule.forecast.engine == "duckdb" for rule in rules)
        with self._local_files(event.files) if on_files else nullcontext([]) as files:
            for rule in rules:
                scope = self._scope(dataset, rule.owner, rule.created_by, rule.grant_id, f"rule/{rule.rule_id}", event.version)
                if scope is None or not rule.columns() <= set(scope.columns):
                    logger.warning("rule skipped: its grant ended or narrowed", extra={"rule": rule.rule_id})
                    continue
                try:
                    if rule.forecast is not None and rule.forecast.engine == "athena":
                        firings = self._forecast_on_athena(rule, dataset, scope, event.version, event.files)
                    else:
                        firings = evaluate_files(rule, Input("data", scope, files))
                except (TimeoutError, QueryFailed) as failed:
                    # Over its time budget, or failing on this version's data: the same on every
                    # retry, so the other rules still run and nothing is half-raised.
                    logger.warning("rule skipped on this version", extra={"rule": rule.rule_id, "why": _failure(failed)})
                    continue
                alerts = [
                    Alert(
                        alert_id=alert_id(rule.rule_id, event.dataset_id, event.version, firing),
                        rule_id=rule.rule_id,
                        dataset_id=event.dataset_id,
                        version=event.version,
                        group=firing.group,
                        window_start=firing.window_start,
                        window_end=_window_end(firing.window_start, rule),
                        value=firing.value,
                        threshold=firing.threshold,
                        forecast=firing.forecast,
                    )
                    for firing in firings
                ]
                if not alerts or self._told(alerts, rule):
                    continue
                # Marked, stored, announced, unmarked: a redelivery finds the mark and finishes, and
                # the sweep announces what a function that died left marked and never redelivered.
                self._analytics.announcing(event.dataset_id, event.version, rule.rule_id, len(alerts))
                raised.extend(self._analytics.put_alerts(alerts))
                self._events.publish(_alert_raised(alerts, rule, dataset.owner, self._clock()))
                self._analytics.announced(event.dataset_id, event.version, rule.rule_id)
        return raised

    def _told(self, alerts: list[Alert], rule: AlertRule) -> bool:
        """Whether these alerts were stored and announced by an earlier delivery (stored, not marked)."""
        first = alerts[0]
        stored = {a.alert_id for a in self._analytics.alerts_of(first.dataset_id, first.version) if a.rule_id == rule.rule_id}
        return {a.alert_id for a in alerts} <= stored and not self._analytics.is_announcing(
            first.dataset_id, first.version, rule.rule_id
        )

    def sweep_announcements(self, older_than_seconds: int = ANNOUNCE_AFTER_SECONDS) -> int:
        """Announce the alerts a function marked and stored but died before announcing, and whose
        event never came again (run on a schedule). A mark whose alerts are not all stored yet waits
        for the redelivery that stores them, for up to STORE_WAIT_SECONDS."""
        announced = 0
        for dataset_id, version, rule_id, firings, marked_at in self._analytics.unannounced(older_than_seconds):
            rule = next((r for r in self._analytics.rules_of(dataset_id) if r.rule_id == rule_id), None)
            dataset = self._catalog.get(dataset_id)
            stored = [a for a in self._analytics.alerts_of(dataset_id, version) if a.rule_id == rule_id]
            if len(stored) < firings and time.time() - marked_at < STORE_WAIT_SECONDS:
                continue
            if rule is not None and dataset is not None and stored:
                self._events.publish(_alert_raised(stored, rule, dataset.owner, self._clock()))
                announced += 1
            self._analytics.announced(dataset_id, version, rule_id)
        return announced

    # -- derived datasets
    def sweep_first_builds(self) -> list[str]:
        """Build each derived dataset defined since the last sweep from its inputs' latest versions
        (run on a schedule: a definition is not an event, and a crash before the build leaves the
        owed item for the next run). One whose inputs have no version yet is built by the first
        version of each, as any rebuild."""
        started = []
        for dataset_id in self._analytics.first_builds_owed():
            try:
                definition = self._analytics.derived(dataset_id)
                if definition is not None and self._rebuild(definition):
                    started.append(dataset_id)
            except Exception:  # kept owed for the next sweep; the others are built meanwhile
                logger.exception("a derived dataset's first build failed", extra={"dataset": dataset_id})
                continue
            self._analytics.first_build_done(dataset_id)
        return started

    def rebuild_derived(self, event: DatasetVersionPublished) -> list[str]:
        started = []
        for output in self._analytics.downstream(event.dataset_id):
            definition = self._analytics.derived(output)
            if definition is not None and self._rebuild(definition):
                started.append(output)
        return started

    def _rebuild(self, definition: DerivedDataset) -> bool:
        target = self._get(definition.dataset_id)
        found = [self._get(i) for i in definition.inputs]
        sources = [s for s in found if s is not None and s.latest_version]
        if target is None or len(sources) != len(found):
            return False  # every input needs a version first
        inputs = [f"{s.dataset_id}@{s.latest_version}" for s in sources]
        upload_id = "u" + hashlib.sha256("|".join([definition.dataset_id, *inputs]).encode()).hexdigest()[:32]
        existing = self._uploads.get_upload(definition.dataset_id, upload_id)
        if existing is not None and (existing.status != "awaiting_upload" or self._landed(existing.landing_key)):
            return False  # this combination of input versions was already built (or is being ingested)
        scopes = []
        for source in sources:
            scope = self._scope(
                source, definition.owner, definition.created_by, None, f"derived/{definition.dataset_id}", source.latest_version
            )
            if scope is None:
                logger.warning("derived dataset not rebuilt: an input is no longer readable", extra={"input": source.dataset_id})
                return False
            scopes.append((source, scope))
        try:
            rows = (
                self._run_on_athena(definition, scopes)
                if definition.engine == "athena"
                else self._run_on_duckdb(definition, scopes)
            )
        except (QueryFailed, InvalidRequest, TimeoutError) as failed:
            if isinstance(failed, TimeoutError) and definition.engine == "athena":
                raise  # Athena's wait may be its own: the queue retries it
            # DuckDB failing on these inputs fails the same way on every retry: logged, and the
            # other derived datasets fed by the input are still built (AWS's errors are retried).
            logger.warning(
                "derived dataset not rebuilt: its query failed", extra={"dataset": definition.dataset_id, "why": _failure(failed)}
            )
            return False
        if not rows:
            return False
        body = _csv(list(definition.columns), rows)
        upload = existing or Upload(
            upload_id=upload_id,
            dataset_id=definition.dataset_id,
            owner=target.owner,
            created_by=f"derived/{definition.dataset_id}",
            created_at=self._clock(),
            source="derived",
            request=UploadRequest(filename="derived.csv", format="csv", size_bytes=len(body)),
            landing_key=landing_key(target.owner, definition.dataset_id, upload_id, "derived.csv"),
            inputs=inputs,
        )
        if existing is None:
            self._uploads.create_upload(upload)
        # Ingest takes it from here: validation against the output's schema, protection, a version.
        # Written by a session acting for the derived dataset's owner, under its key.
        self._scopes.s3(target.owner).put_object(
            Bucket=self._settings.data_bucket,
            Key=upload.landing_key,
            Body=body,
            ContentType="text/csv",
            **(sse_kms(self._department_keys.key_of(target.owner)) if self._department_keys else {}),
        )
        return True

    def _run_on_duckdb(self, definition: DerivedDataset, scopes: list[tuple[Dataset, ReadScope]]) -> list[tuple[Any, ...]]:
        from functions.analytics.engine import Input, derived_rows, sandbox

        with ExitStack() as stack:
            tables = [
                Input(table_name(source.dataset_id), scope, stack.enter_context(self._local_files(source.latest_files)))
                for source, scope in scopes
            ]
            with sandbox(tables, definition.places) as connection:
                return derived_rows(connection, definition.sql, definition.columns)

    def _forecast_on_athena(
        self, rule: AlertRule, dataset: Dataset, scope: ReadScope, version: int, files: list[str]
    ) -> list[engine.Firing]:
        """A forecast rule's windows reduced by Athena (as the rule's reader may read them), fitted here."""
        from functions.analytics.engine import evaluate_series, group_types

        if self._athena is None:
            raise RuntimeError(f"rule {rule.rule_id} reduces its windows on Athena, which this deployment does not have")
        types = group_types(rule, dataset, scope)
        with tempfile.TemporaryDirectory(prefix="cityshare-windows-") as folder:
            windows = forecast_windows(
                self._athena,
                rule,
                self._settings.query_catalog,
                dataset,
                scope,
                version,
                files,
                Path(folder) / "windows.csv",
                TIMEOUT_SECONDS,
            )
            return evaluate_series(rule, windows, types)

    def _run_on_athena(self, definition: DerivedDataset, scopes: list[tuple[Dataset, ReadScope]]) -> list[tuple[Any, ...]]:
        if self._athena is None:
            raise RuntimeError(f"{definition.dataset_id} runs on Athena, which this deployment does not have")
        ctes, inputs = [], []
        for source, scope in scopes:
            cte, query_input = version_input(
                table_name(source.dataset_id),
                self._settings.query_catalog,
                source,
                scope,
                source.latest_version or 0,
                source.latest_files,
            )
            ctes.append(cte)
            inputs.append(query_input)
        header, rows = self._athena.run(wrapped(definition.sql, ctes), inputs)
        if header != list(definition.columns):
            raise RuntimeError(f"Athena returned columns {header}, the definition declares {list(definition.columns)}")
        return [tuple(row) for row in rows]

    def _landed(self, key: str) -> bool:
        s3 = self._scopes.s3(owner_of(key) or "")
        try:
            s3.head_object(Bucket=self._settings.data_bucket, Key=key)
        except s3.exceptions.ClientError:
            return False
        return True

    def _local_files(self, keys: list[str]) -> AbstractContextManager[list[Path]]:
        """The objects in the event's temporary folder, each downloaded once per event."""
        cache = self._downloads if self._folder else None
        return local_copies(self._scopes, self._settings.data_bucket, keys, self._folder, cache)


def _csv(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue().encode()


def _failure(failed: Exception) -> str:
    """What failed, for the log: never the message, which may quote a value of the data."""
    return failed.kind if isinstance(failed, QueryFailed) else type(failed).__name__


def _window_end(start: str | None, rule: AlertRule) -> str | None:
    if start is None or rule.window is None:
        return None
    moment = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=rule.window.minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert_raised(alerts: list[Alert], rule: AlertRule, owner: str, now: str) -> AlertRaised:
    ordered = sorted(alerts, key=lambda a: (a.window_start or "", json_key(a.group), a.alert_id))
    return AlertRaised(
        rule_id=rule.rule_id,
        rule_name=rule.name,
        rule_owner=rule.owner,
        dataset_id=ordered[0].dataset_id,
        version=ordered[0].version,
        owner=owner,
        comparison=rule.comparison,
        raised_at=now,
        firings=len(ordered),
        alerts=[
            Firing(
                alert_id=a.alert_id,
                group=a.group,
                window_start=a.window_start,
                window_end=a.window_end,
                value=a.value,
                threshold=a.threshold,
                forecast=a.forecast,
            )
            for a in ordered[:FIRINGS_PER_EVENT]
        ],
    )


def json_key(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
