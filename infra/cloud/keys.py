"""The stack's own KMS keys. Departments' keys are not here: each is made at run time when the
department is registered (functions/identity/provisioning.py), so onboarding needs no deploy.

- platform: tables, the data bucket's default encryption, the notifications topic, Athena results
  and the platform secret (masking and linkage keys);
- operations: log groups and the alarms topic, usable by CloudWatch Logs (for log groups of this
  account only) and by CloudWatch alarms (to publish to the topic).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class Keys(Construct):
    def __init__(self, scope: Construct, construct_id: str, stage: str, retain: bool) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.platform = kms.Key(
            self,
            "Platform",
            alias=f"alias/cityshare/{stage}/platform",
            description="CityShare platform tables, buckets, topics and secret",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        stack = Stack.of(self)
        self.operations = kms.Key(
            self,
            "Operations",
            alias=f"alias/cityshare/{stage}/operations",
            description="CityShare log groups and alarms",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        self.operations.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptsThisAccountsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:DescribeKey",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs", resource="log-group", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
                        )
                    }
                },
            )
        )
        self.operations.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsAndKeyEventsPublishToTheAlarmsTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com"), iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
