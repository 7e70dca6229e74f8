"""The Lambda functions of the spec: one code asset (functions/ and policies/), the dependency layers,
the same defaults for all (Python 3.13 on arm64, JSON logs, X-Ray, KMS-encrypted log groups with
retention), and a role of its own for each, holding exactly the spec's permissions
(infra/cloud/permissions.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cloud.config import LOG_RETENTION_NAMES
from infra.cloud.permissions import (
    assume_data_role_statement,
    audit_seal_statements,
    function_role_name,
    own_prefix_statements,
    platform_secret_statement,
    table_statements,
)
from infra.spec import FunctionSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSET_FOLDERS = ("functions", "policies")


def stage_function_code(target: Path, lambda_python: str | None = None) -> Path:
    """Copy exactly what the functions run (functions/ and policies/) into `target`, the code asset,
    and, given the Lambda runtime's Python (`make` passes LAMBDA_PYTHON), compile its .pyc.

    A copy rather than exclude globs: what ships is then plain to see and its hash is stable (the
    .pyc are checked by source hash, not mtime, and compiled with a fixed hash seed).
    """
    shutil.rmtree(target, ignore_errors=True)
    for folder in ASSET_FOLDERS:
        shutil.copytree(
            PROJECT_ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt")
        )
    if lambda_python:
        compile_for_lambda(lambda_python, target, "/var/task")
    return target


def compile_for_lambda(python: str, folder: Path, runtime_path: str) -> None:
    """.pyc for the runtime's Python, valid whatever the files' mtimes after unzipping."""
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", "-d", runtime_path, str(folder)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


@dataclass(frozen=True)
class Resources:
    """What the functions' permissions name."""

    tables: dict[str, dynamodb.TableV2]
    bucket: s3.IBucket
    bus: events.IEventBus
    topics: Mapping[str, sns.ITopic]
    dead_letter_queues: Mapping[str, sqs.IQueue]
    platform_key: kms.IKey
    logs_key: kms.IKey
    data_role_arn: str
    stage: str = ""
    audit_archive: s3.IBucket | None = None
    audit_seal_key: kms.IKey | None = None


def invoked_function_name(stage: str, function: str) -> str:
    return f"cityshare-{stage}-{function}"


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        stage: str,
        specs: tuple[FunctionSpec, ...],
        layer_dir: Path,
        code_dir: Path,
        environment: dict[str, str],
        resources: Resources,
        log_retention_days: int,
        retain_logs: bool = False,
        reserved: dict[str, int] | None = None,
        asynchronous: set[str] | None = None,
        undelivered: sqs.IQueue | None = None,
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
                description=f"CityShare {name} dependencies (functions/requirements-{name}.txt, wheels for arm64, .pyc for 3.13)",
            )
            for name in sorted({layer for spec in specs for layer in spec.layers})
        }
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        for spec in specs:
            log_group = logs.LogGroup(
                self,
                f"Logs-{spec.name}",
                retention=logs.RetentionDays[LOG_RETENTION_NAMES[log_retention_days]],
                encryption_key=resources.logs_key,
                # Kept when the stack is deleted in stages that keep their data: logs say who did what.
                removal_policy=RemovalPolicy.RETAIN if retain_logs else RemovalPolicy.DESTROY,
            )
            role = iam.Role(
                self,
                f"Role-{spec.name}",
                role_name=function_role_name(stage, spec.name),
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"CityShare {spec.name}: exactly the permissions infra/spec.py gives it",
            )
            for statement in self._statements(spec, resources, log_group):
                role.add_to_policy(statement)
            invoked = spec.name in {name for other in specs for name in other.invokes}
            function = lambda_.Function(
                self,
                f"Function-{spec.name}",
                # Named when another function calls it: its name is in their environment before it exists.
                function_name=invoked_function_name(stage, spec.name) if invoked else None,
                runtime=lambda_.Runtime.PYTHON_3_13,
                architecture=lambda_.Architecture.ARM_64,
                handler=spec.handler,
                code=code,
                layers=[layers[name] for name in spec.layers],
                memory_size=spec.memory_mb,
                reserved_concurrent_executions=(reserved or {}).get(spec.name),
                ephemeral_storage_size=Size.mebibytes(spec.ephemeral_storage_mb),
                timeout=Duration.seconds(spec.timeout_seconds),
                environment=environment,
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=log_group,
                role=role,
                # Invoked asynchronously (schedules): what fails after Lambda's retries is kept.
                dead_letter_queue=undelivered if spec.name in (asynchronous or set()) else None,
                description=f"CityShare {spec.name}",
            )
            self.functions[spec.name] = function
            self.roles[spec.name] = role

    @staticmethod
    def _statements(spec: FunctionSpec, resources: Resources, log_group: logs.ILogGroup) -> list[iam.PolicyStatement]:
        statements = [
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_group.log_group_arn}:*"],
            ),
            *table_statements(spec, resources.tables, resources.platform_key),
            *own_prefix_statements(spec, resources.bucket),
        ]
        if spec.acts_for_departments:
            statements.append(assume_data_role_statement(resources.data_role_arn))
        if (spec.seals_audit or spec.reads_audit_seals) and resources.audit_archive and resources.audit_seal_key:
            statements += audit_seal_statements(spec, resources.audit_archive, resources.audit_seal_key, resources.platform_key)
        if spec.platform_secret:
            statements.append(platform_secret_statement(resources.platform_key))
        if spec.publishes_events:
            statements.append(
                iam.PolicyStatement(sid="PublishEvents", actions=["events:PutEvents"], resources=[resources.bus.event_bus_arn])
            )
        for topic in spec.topics:
            statements.append(
                iam.PolicyStatement(
                    sid=f"Publish{topic.title()}", actions=["sns:Publish"], resources=[resources.topics[topic].topic_arn]
                )
            )
            region = Stack.of(log_group).region
            statements.append(
                iam.PolicyStatement(
                    sid=f"TopicKey{topic.title()}",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[resources.platform_key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
                )
            )
        for invoked in spec.invokes:
            stack = Stack.of(log_group)
            statements.append(
                iam.PolicyStatement(
                    sid=f"Invoke{invoked.title()}",
                    actions=["lambda:InvokeFunction"],
                    resources=[
                        stack.format_arn(
                            service="lambda",
                            resource="function",
                            resource_name=invoked_function_name(resources.stage, invoked),
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )
        for queue in spec.dead_letters:
            statements.append(
                iam.PolicyStatement(
                    sid=f"DeadLetters{queue.title()}",
                    actions=["sqs:SendMessage", "sqs:GetQueueUrl"],
                    resources=[resources.dead_letter_queues[queue].queue_arn],
                )
            )
        return statements
