"""The one CityShare stack: composes one construct per concern, all built from infra.spec.SPEC.

No department appears here: each is registered through the API and provisioned at run time (its KMS
key, its API key) by the provisioner function, so the template is the same for 6 departments or 500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import CfnOutput, Duration, IStableStringProducer, Lazy, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_logs as logs
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from constructs import Construct

from infra.cloud.api import Api
from infra.cloud.backups import Backups
from infra.cloud.config import LOG_RETENTION_NAMES, DeploymentConfig
from infra.cloud.console import ConsoleHosting
from infra.cloud.functions import Functions, Resources, invoked_function_name
from infra.cloud.keys import Keys
from infra.cloud.messaging import Messaging
from infra.cloud.monitoring import Monitoring
from infra.cloud.permissions import (
    STAGE_TAG,
    DataRole,
    QueryRole,
    data_role_name,
    function_role_name,
    provisioner_statements,
    query_role_name,
)
from infra.cloud.queries import Queries
from infra.cloud.storage import Storage
from infra.cloud.suppressions import acknowledge_findings
from infra.cloud.tables import Tables
from infra.spec import CONSOLE_PATH, SPEC, PlatformSpec, function_environment


@jsii.implements(IStableStringProducer)
class _Deferred:
    """A value the template needs before the construct that makes it exists (see the console below)."""

    def __init__(self, produce: Callable[[], str]) -> None:
        self._produce = produce

    def produce(self) -> str:
        return self._produce()


# The function whose role alone signs audit seals and writes the audit archive.
SEALER_FUNCTION = "sealer"


class CityShareStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        config: DeploymentConfig,
        layer_dir: Path,
        code_dir: Path,
        console_dir: Path,
        spec: PlatformSpec = SPEC,
        acknowledge: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        Tags.of(self).add(STAGE_TAG, config.stage)
        stage = config.stage
        role_arn = {
            name: self.format_arn(service="iam", region="", resource="role", resource_name=name)
            for name in [
                data_role_name(stage),
                query_role_name(stage),
                *(function_role_name(stage, f.name) for f in spec.functions),
            ]
        }
        query_role_arn = role_arn[query_role_name(stage)]
        sealer_role_arn = role_arn[function_role_name(stage, SEALER_FUNCTION)]
        keys = Keys(self, "Keys", stage, config.retain_data, sealer_role_arn)
        storage = Storage(
            self,
            "Storage",
            spec.buckets,
            keys.platform,
            query_role_arn,
            config.noncurrent_version_days,
            config.audit_retention_days,
            sealer_role_arn,
        )
        data_bucket = storage.buckets["data"]
        tables = Tables(self, "Tables", spec.tables, keys.platform, config.retain_data)
        backups = Backups(
            self,
            "Backups",
            stage,
            tables.tables,
            keys.platform,
            keys.operations,
            config.backup_retention_days,
            config.backup_vault_lock,
        )
        messaging = Messaging(self, "Messaging", spec.queues, spec.event_bus, spec.rules, stage, spec.topics, keys.platform)
        for bucket_spec in spec.buckets:
            messaging.notify(storage.buckets[bucket_spec.name], bucket_spec)
        queries = Queries(self, "Queries", stage, spec.query_catalog, spec.query_workgroup, data_bucket, keys.platform)

        physical = (
            {("table", name): table.table_name for name, table in tables.tables.items()}
            | {("bucket", name): bucket.bucket_name for name, bucket in storage.buckets.items()}
            | {("bus", spec.event_bus): messaging.bus.event_bus_name, ("key", "platform"): keys.platform.key_arn}
            | {("key", "audit-seal"): keys.audit_seal.key_arn}
            | {("topic", name): topic.topic_arn for name, topic in messaging.topics.items()}
            | {("dead-letters", name): queue.queue_name for name, queue in messaging.dead_letter_queues.items()}
            | {
                ("catalog", spec.query_catalog): queries.database_name,
                ("workgroup", spec.query_workgroup): queries.workgroup_name,
                ("role", "data"): role_arn[data_role_name(stage)],
                ("role", "queries"): query_role_arn,
                ("function", "privacy"): invoked_function_name(stage, "privacy"),
                ("function", "sessions"): invoked_function_name(stage, "sessions"),
                # Only the provisioner needs it (set below, once the API exists).
                ("usage-plan", "departments"): "",
            }
        )
        environment = function_environment(physical, stage, config.token_audience)
        environment["POWERTOOLS_METRICS_NAMESPACE"] = "CityShare"
        environment["CITY_NAME"] = config.city_name
        resources = Resources(
            tables=tables.tables,
            bucket=data_bucket,
            bus=messaging.bus,
            topics=messaging.topics,
            dead_letter_queues=messaging.dead_letter_queues,
            platform_key=keys.platform,
            logs_key=keys.operations,
            data_role_arn=role_arn[data_role_name(stage)],
            stage=stage,
            audit_archive=storage.buckets["audit-archive"],
            audit_seal_key=keys.audit_seal,
        )
        functions = Functions(
            self,
            "Functions",
            stage,
            spec.functions,
            layer_dir,
            code_dir,
            environment,
            resources,
            config.log_retention_days,
            retain_logs=config.retain_data,
            reserved=spec.reserved_concurrency() if config.reserved_concurrency else None,
            asynchronous={schedule.function for schedule in spec.schedules},
            undelivered=messaging.undelivered,
        )
        lambdas = functions.functions
        DataRole(
            self,
            "DataRole",
            stage,
            data_bucket,
            [functions.roles[f.name] for f in spec.functions if f.acts_for_departments],
        )
        # The functions that run Athena queries, as the query role (which departments' key policies
        # name), one session per query limited to its inputs.
        query_functions = [functions.roles[f.name] for f in spec.functions if f.runs_queries]
        query_role = QueryRole(self, "QueryRole", stage, data_bucket, keys.platform, query_functions)
        queries.grant_query(query_role.role)
        for schedule in spec.schedules:
            events.Rule(
                self,
                f"Schedule-{schedule.name}",
                schedule=events.Schedule.rate(Duration.minutes(schedule.minutes)),
                targets=[
                    targets.LambdaFunction(
                        lambdas[schedule.function],
                        event=events.RuleTargetInput.from_object({"cityshare-schedule": schedule.name}),
                        retry_attempts=2,
                        dead_letter_queue=messaging.undelivered,
                    )
                ],
            )
        for name, function in lambdas.items():
            function_spec = spec.function(name)
            if function_spec.query_catalog == "write":
                queries.grant_register(function)
        for queue_spec in spec.queues:
            if queue_spec.consumer:
                lambdas[queue_spec.consumer].add_event_source(
                    SqsEventSource(
                        messaging.queues[queue_spec.name],
                        batch_size=queue_spec.batch_size,
                        report_batch_item_failures=True,
                        max_concurrency=queue_spec.max_concurrency,
                    )
                )
        # The console's content security policy names the API's origin, and the API answers CORS for
        # the console's: each needs the other's name, known once both exist (resolved at synth).
        console = ConsoleHosting(
            self,
            "Console",
            console_dir,
            Lazy.string(_Deferred(lambda: api.origin)),
            storage.access_logs,
            keys.operations,
            logs.RetentionDays[LOG_RETENTION_NAMES[config.log_retention_days]],
            config.console_domain_name,
            config.console_certificate_arn,
        )
        api = Api(self, "Api", config, spec.routes, lambdas, spec.authorizer, spec.limits, keys.operations, console.origin)
        console.publish(api.url, config.token_audience)
        for function_spec in spec.functions:
            if any(route.function == function_spec.name and route.authorizer is None for route in spec.routes):
                lambdas[function_spec.name].add_environment("CONSOLE_ORIGIN", console.origin)
        for function_spec in spec.functions:
            if function_spec.provisions_departments:
                lambdas[function_spec.name].add_environment("USAGE_PLAN_ID", api.usage_plan.usage_plan_id)
                for statement in provisioner_statements(self, stage, api.usage_plan.usage_plan_id):
                    functions.roles[function_spec.name].add_to_policy(statement)
        Monitoring(
            self,
            "Monitoring",
            stage,
            keys.operations,
            config.alarm_emails,
            messaging.dead_letter_queues,
            messaging.queues["ingest"],
            lambdas,
            api.rest_api,
            messaging.undelivered,
            str(api.web_acl.name),
        )
        CfnOutput(self, "ApiUrl", value=api.url, description="Endpoint for CityShare profiles")
        if api.domain is not None:
            CfnOutput(
                self,
                "ApiDomainTarget",
                value=api.domain.domain_name_alias_domain_name,
                description="Point the API's name here (a DNS CNAME or alias record)",
            )
        CfnOutput(self, "ConsoleUrl", value=f"{console.origin}{CONSOLE_PATH}", description="The stewards' console")
        CfnOutput(self, "Audience", value=config.token_audience, description="The `aud` every request token carries")
        CfnOutput(self, "BackupVault", value=backups.vault.backup_vault_name, description="The tables' nightly backups")
        CfnOutput(
            self,
            "AuditSealKey",
            value=keys.audit_seal.key_arn,
            description="Signs audit seals: pin its public half (GetPublicKey)",
        )
        CfnOutput(
            self,
            "AuditArchive",
            value=storage.buckets["audit-archive"].bucket_name,
            description="Every audit entry and seal, under Object Lock",
        )
        CfnOutput(self, "DirectoryTable", value=tables.tables["directory"].table_name, description="For `make bootstrap-admin`")
        if acknowledge:  # tests build it once without, to find acknowledgements no finding needs
            acknowledge_findings(self)
