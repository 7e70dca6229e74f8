"""The one CityShare stack: composes one construct per concern, all built from infra.spec.SPEC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from constructs import Construct

from infra.cloud.api import Api
from infra.cloud.config import DeploymentConfig
from infra.cloud.functions import Functions
from infra.cloud.keys import Keys
from infra.cloud.messaging import Messaging
from infra.cloud.monitoring import Monitoring
from infra.cloud.queries import Queries
from infra.cloud.storage import Storage
from infra.cloud.suppressions import acknowledge_findings
from infra.cloud.tables import Tables
from infra.spec import RESOURCE_ENVIRONMENT, SPEC, PlatformSpec, stalled_after_seconds


class CityShareStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        config: DeploymentConfig,
        layer_dir: Path,
        code_dir: Path,
        spec: PlatformSpec = SPEC,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        keys = Keys(self, "Keys", config.stage, config.departments)
        storage = Storage(self, "Storage", spec.buckets, keys.platform)
        tables = Tables(self, "Tables", spec.tables, keys.platform)
        messaging = Messaging(
            self, "Messaging", spec.queues, spec.event_bus, spec.rules, config.stage, spec.topics, keys.platform
        )
        for bucket_spec in spec.buckets:
            messaging.notify(storage.buckets[bucket_spec.name], bucket_spec)
        queries = Queries(
            self, "Queries", config.stage, spec.query_catalog, spec.query_workgroup, storage.buckets["data"], keys.platform
        )

        physical = (
            {("table", name): table.table_name for name, table in tables.tables.items()}
            | {("bucket", name): bucket.bucket_name for name, bucket in storage.buckets.items()}
            | {("bus", spec.event_bus): messaging.bus.event_bus_name, ("key", "platform"): keys.platform.key_arn}
            | {("topic", name): topic.topic_arn for name, topic in messaging.topics.items()}
            | {("dead-letters", name): queue.queue_name for name, queue in messaging.dead_letter_queues.items()}
            | {
                ("catalog", spec.query_catalog): queries.database_name,
                ("workgroup", spec.query_workgroup): queries.workgroup_name,
            }
        )
        environment = {variable: physical[resource] for variable, resource in RESOURCE_ENVIRONMENT.items()}
        environment.update(
            CITYSHARE_STAGE=config.stage,
            CITYSHARE_AUDIENCE=config.token_audience,
            MAX_BODY_BYTES=str(spec.limits.max_body_bytes),
            INGEST_MAX_ATTEMPTS=str(spec.queue("ingest").max_receive_count),
            INGEST_STALLED_AFTER_SECONDS=str(stalled_after_seconds(spec.queue("ingest"))),
            DEPARTMENT_KEYS=json.dumps({d: k.key_arn for d, k in keys.departments.items()}),
            POWERTOOLS_SERVICE_NAME="cityshare",
        )
        functions = Functions(
            self,
            "Functions",
            spec.functions,
            layer_dir,
            code_dir,
            environment,
            tables.tables,
            storage.buckets,
            messaging.bus,
            messaging.topics,
            config.log_retention_days,
        )
        api_functions = functions.functions
        for schedule in spec.schedules:
            events.Rule(
                self,
                f"Schedule-{schedule.name}",
                schedule=events.Schedule.rate(Duration.minutes(schedule.minutes)),
                targets=[
                    targets.LambdaFunction(
                        api_functions[schedule.function],
                        event=events.RuleTargetInput.from_object({"cityshare-schedule": schedule.name}),
                        retry_attempts=2,
                    )
                ],
            )
        for name, function in api_functions.items():
            function_spec = spec.function(name)
            if function_spec.query_catalog == "write":
                queries.grant_register(function)
            if function_spec.runs_queries:
                queries.grant_query(function)
        for name, function in api_functions.items():
            if spec.function(name).uses_data_keys:
                for key in [keys.platform, *keys.departments.values()]:
                    key.grant_encrypt_decrypt(function)
        for name, function in api_functions.items():
            for queue_name in spec.function(name).dead_letters:
                messaging.dead_letter_queues[queue_name].grant_send_messages(function)
        for queue_spec in spec.queues:
            if queue_spec.consumer:
                api_functions[queue_spec.consumer].add_event_source(
                    SqsEventSource(
                        messaging.queues[queue_spec.name], batch_size=queue_spec.batch_size, report_batch_item_failures=True
                    )
                )
        api = Api(
            self,
            "Api",
            config.stage,
            spec.routes,
            api_functions,
            api_functions[spec.authorizer],
            config.rate_limit,
            config.burst_limit,
        )
        monitoring = Monitoring(
            self, "Monitoring", keys.platform, messaging.dead_letter_queues, api_functions, api.rest_api, config.alarm_email
        )
        monitoring.topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[monitoring.topic.topic_arn],
            )
        )
        CfnOutput(self, "ApiUrl", value=api.rest_api.url, description="Endpoint for CityShare profiles")
        CfnOutput(self, "Audience", value=config.token_audience, description="The `aud` every request token carries")
        CfnOutput(self, "DirectoryTable", value=tables.tables["directory"].table_name, description="For `make bootstrap-admin`")
        acknowledge_findings(self)
