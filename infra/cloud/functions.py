"""The Lambda functions of the spec: one code asset (functions/ and policies/), one dependency layer,
the same defaults for all (Python 3.13 on arm64, JSON logs, X-Ray, log retention)."""

from __future__ import annotations

import shutil
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.cloud.config import LOG_RETENTION_NAMES
from infra.spec import FunctionSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSET_FOLDERS = ("functions", "policies")


def stage_function_code(target: Path) -> Path:
    """Copy exactly what the functions run (functions/ and policies/) into `target`, the code asset.

    A copy rather than exclude globs: what ships is then plain to see and its hash is stable.
    """
    shutil.rmtree(target, ignore_errors=True)
    for folder in ASSET_FOLDERS:
        shutil.copytree(
            PROJECT_ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt")
        )
    return target


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        specs: tuple[FunctionSpec, ...],
        layer_dir: Path,
        code_dir: Path,
        environment: dict[str, str],
        tables: dict[str, dynamodb.TableV2],
        buckets: dict[str, s3.Bucket],
        bus: events.EventBus,
        topics: dict[str, sns.Topic],
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(str(code_dir))
        layers = {
            name: lambda_.LayerVersion(
                self,
                f"Dependencies-{name}",
                code=lambda_.Code.from_asset(str(layer_dir / name)),
                compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description=f"CityShare {name} dependencies (functions/requirements-{name}.txt, wheels for arm64)",
            )
            for name in sorted({layer for spec in specs for layer in spec.layers})
        }
        self.functions: dict[str, lambda_.Function] = {}
        for spec in specs:
            log_group = logs.LogGroup(
                self,
                f"Logs-{spec.name}",
                retention=logs.RetentionDays[LOG_RETENTION_NAMES[log_retention_days]],
                removal_policy=RemovalPolicy.DESTROY,
            )
            function = lambda_.Function(
                self,
                f"Function-{spec.name}",
                runtime=lambda_.Runtime.PYTHON_3_13,
                architecture=lambda_.Architecture.ARM_64,
                handler=spec.handler,
                code=code,
                layers=[layers[name] for name in spec.layers],
                memory_size=spec.memory_mb,
                ephemeral_storage_size=Size.mebibytes(spec.ephemeral_storage_mb),
                timeout=Duration.seconds(spec.timeout_seconds),
                environment=environment,
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=log_group,
                description=f"CityShare {spec.name}",
            )
            for table_name, access in spec.tables.items():
                table = tables[table_name]
                (table.grant_read_write_data if access == "write" else table.grant_read_data)(function)
            for bucket_name, access in spec.buckets.items():
                bucket = buckets[bucket_name]
                (bucket.grant_read_write if access == "write" else bucket.grant_read)(function)
            if spec.publishes_events:
                bus.grant_put_events_to(function)
            for topic_name in spec.topics:
                topics[topic_name].grant_publish(function)
            self.functions[spec.name] = function
