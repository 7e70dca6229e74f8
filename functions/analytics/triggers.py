"""What landing data sets off: notifications to subscribers (inbox, SNS, signed webhooks), alert rules
evaluated on the new version, derived datasets rebuilt from their inputs' latest versions.

Every step is safe to repeat: notifications and alerts are stored once per event, and a derived
run's upload id is a hash of its input versions, so a redelivered or late event changes nothing.
Rules and derived queries read under their definer's grant, looked up again each time: when the
grant has ended they stop (and the refusal is audited in the owner's chain).
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from functions.analytics.athena import AthenaRunner, input_cte, wrapped
from functions.analytics.models import Alert, AlertRule, DerivedDataset, Subscription
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.scope import ReadScope, scope_for, table_name
from functions.analytics.webhooks import WebhookSender
from functions.audit.chain import AuditEvent, AuditLog
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.clock import utc_now
from functions.core.events import AlertRaised, DatasetVersionPublished, EventDetail, EventPublisher
from functions.core.layout import landing_key, owner_of
from functions.core.observability import logger
from functions.core.scoped import DepartmentScopes, sse_kms
from functions.core.settings import Settings
from functions.identity.directory import DepartmentKeys
from functions.ingest.glue import version_table
from functions.ingest.models import Upload, UploadRequest
from functions.ingest.repository import IngestRepository
from functions.notifications.service import NotificationService
from functions.sharing.models import Grant, choose_grant, usable
from functions.sharing.repository import SharingRepository


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
        webhooks: WebhookSender,
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
        self._webhooks = webhooks
        self._athena = athena
        self._dataset: Dataset | None = None
        self._found: dict[str, list[tuple[Subscription, str | None]]] = {}
        self._scopes = scopes or DepartmentScopes("")
        self._department_keys = department_keys
        self._clock = clock

    def handle(self, event: EventDetail) -> None:
        # The dataset an event is about is read once, and its subscriptions once, per event.
        self._dataset = self._catalog.get(event.dataset_id) if isinstance(event, DatasetVersionPublished | AlertRaised) else None
        self._found = {}
        # Deduplicated on what the event is about, not on its delivery: the same change put on the
        # bus twice (a retry, the outbox sweeper) is told once per department.
        delivered = {n.department: n for n in self._notifications.notify(event.key(), event)}
        if isinstance(event, DatasetVersionPublished | AlertRaised):
            kind = "versions" if isinstance(event, DatasetVersionPublished) else "alerts"
            for subscription, secret in self._subscriptions(kind):
                notification = delivered.get(subscription.department)
                if notification is not None and subscription.webhook_url and secret:
                    self._webhooks.send(subscription.webhook_url, secret, notification.model_dump(mode="json"))
        if isinstance(event, DatasetVersionPublished):
            self.evaluate_rules(event, self._dataset)
            self.rebuild_derived(event)

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

    def _may_read(self, dataset: Dataset, department: str, principal: str | None = None, whole: bool = False) -> bool:
        if dataset.open_to(department):
            return True
        grants = self._grants(dataset, department, principal)
        return any(not g.terms.restricted() for g in grants) if whole else bool(grants)

    def _grants(self, dataset: Dataset, department: str, principal: str | None) -> list[Grant]:
        return usable(self._sharing.grants_between(dataset.owner, department), dataset, principal, self._clock())

    def _scope(self, dataset: Dataset, reader: str, grant_id: str | None, purpose: str, version: int) -> ReadScope | None:
        """What `reader` may read of `dataset` now (None if nothing), audited in the owner's chain."""
        if dataset.open_to(reader):
            scope: ReadScope | None = scope_for(dataset, None)
        else:
            grants = self._grants(dataset, reader, None)
            if grant_id is not None:
                grants = [g for g in grants if g.grant_id == grant_id]
            grant = choose_grant(grants, None)
            scope = scope_for(dataset, grant) if grant else None
        self._audit.append(
            dataset.owner,
            AuditEvent(
                actor_department=reader,
                actor_principal=purpose,
                action="ReadData",
                resource=f"Dataset::{dataset.dataset_id}",
                decision="allow" if scope else "deny",
                reason="" if scope else "no-live-grant",
                details={"version": version, "grant": scope.grant_id if scope else grant_id, "purpose": purpose},
            ),
        )
        return scope

    # -- alert rules
    def evaluate_rules(self, event: DatasetVersionPublished, dataset: Dataset | None = None) -> list[Alert]:
        rules = self._analytics.rules_of(event.dataset_id)
        dataset = dataset or self._catalog.get(event.dataset_id)
        if not rules or dataset is None:
            return []
        from functions.analytics.engine import Input, alert_id, evaluate_files

        raised: list[Alert] = []
        with self._local_files(event.files) as files:
            for rule in rules:
                scope = self._scope(dataset, rule.owner, rule.grant_id, f"rule/{rule.rule_id}", event.version)
                if scope is None or not rule.columns() <= set(scope.columns):
                    logger.warning("rule skipped: its grant ended or narrowed", extra={"rule": rule.rule_id})
                    continue
                firings = evaluate_files(rule, Input("data", scope, files))
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
                    )
                    for firing in firings
                ]
                new = self._analytics.put_alerts(alerts)
                now = self._clock()
                try:
                    place = {alert.alert_id: number for number, alert in enumerate(alerts, 1)}
                    self._events.publish(
                        *(_alert_raised(alert, rule, dataset.owner, now, place[alert.alert_id], len(alerts)) for alert in new)
                    )
                except Exception:
                    self._analytics.forget_alerts(new)  # so the redelivered event raises them again
                    raise
                raised.extend(new)
        return raised

    # -- derived datasets
    def rebuild_derived(self, event: DatasetVersionPublished) -> list[str]:
        started = []
        for output in self._analytics.downstream(event.dataset_id):
            definition = self._analytics.derived(output)
            if definition is not None and self._rebuild(definition):
                started.append(output)
        return started

    def _rebuild(self, definition: DerivedDataset) -> bool:
        target = self._catalog.get(definition.dataset_id)
        found = [self._catalog.get(i) for i in definition.inputs]
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
            scope = self._scope(source, definition.owner, None, f"derived/{definition.dataset_id}", source.latest_version)
            if scope is None:
                logger.warning("derived dataset not rebuilt: an input is no longer readable", extra={"input": source.dataset_id})
                return False
            scopes.append((source, scope))
        rows = (
            self._run_on_athena(definition, scopes) if definition.engine == "athena" else self._run_on_duckdb(definition, scopes)
        )
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
            with sandbox(tables) as connection:
                return derived_rows(connection, definition.sql, definition.columns)

    def _run_on_athena(self, definition: DerivedDataset, scopes: list[tuple[Dataset, ReadScope]]) -> list[tuple[Any, ...]]:
        if self._athena is None:
            raise RuntimeError(f"{definition.dataset_id} runs on Athena, which this deployment does not have")
        ctes = []
        for source, scope in scopes:
            temporal = {n for n, c in source.table_schema.properties.items() if c.format in ("date-time", "date")}
            table = version_table(source.dataset_id, source.latest_version)
            ctes.append(input_cte(table_name(source.dataset_id), self._settings.query_catalog, table, scope, temporal))
        header, rows = self._athena.run(wrapped(definition.sql, ctes))
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

    @contextmanager
    def _local_files(self, keys: list[str]) -> Iterator[list[Path]]:
        """The objects downloaded to a temporary folder (DuckDB reads them there, not from S3), each
        through a session acting for the department it belongs to."""
        with tempfile.TemporaryDirectory(prefix="cityshare-trigger-") as folder:
            paths = []
            for number, key in enumerate(keys):
                path = Path(folder) / f"{number:05d}-{Path(key).name}"
                self._scopes.s3(owner_of(key) or "").download_file(self._settings.data_bucket, key, str(path))
                paths.append(path)
            yield paths


def _csv(columns: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue().encode()


def _window_end(start: str | None, rule: AlertRule) -> str | None:
    if start is None or rule.window is None:
        return None
    moment = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=rule.window.minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _alert_raised(alert: Alert, rule: AlertRule, owner: str, now: str, firing: int, firings: int) -> AlertRaised:
    return AlertRaised(
        alert_id=alert.alert_id,
        rule_id=rule.rule_id,
        rule_name=rule.name,
        rule_owner=rule.owner,
        dataset_id=alert.dataset_id,
        version=alert.version,
        owner=owner,
        group=alert.group,
        window_start=alert.window_start,
        window_end=alert.window_end,
        value=alert.value,
        threshold=alert.threshold,
        comparison=rule.comparison,
        raised_at=now,
        firing=firing,
        firings=firings,
    )
