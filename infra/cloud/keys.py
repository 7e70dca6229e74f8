"""The stack's own KMS keys. Departments' keys are not here: each is made at run time when the
department is registered (functions/identity/provisioning.py), so onboarding needs no deploy.

- platform: tables, the data bucket's default encryption, the notifications topic, Athena results
  and the platform secret (masking and linkage keys);
- operations: log groups and the alarms topic, usable by CloudWatch Logs (for log groups of this
  account only) and by CloudWatch alarms and EventBridge (to publish to the topic);
- audit seal: an asymmetric (ECC P-256) signing key; its policy lets the sealer's role alone sign
  (functions/audit/sealing.py), anyone in the account with IAM's leave read its public half.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class Keys(Construct):
    def __init__(self, scope: Construct, construct_id: str, stage: str, retain: bool, sealer_role_arn: str) -> None:
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
        self.audit_seal = kms.Key(
            self,
            "AuditSeal",
            alias=f"alias/cityshare/{stage}/audit-seal",
            description="CityShare audit seals: signs each chain's head (the sealer function only)",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            # Seals made with it stay verifiable only while its public half can be had: kept in every stage.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.audit_seal.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheSealerSigns",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:Sign"],
                resources=["*"],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": sealer_role_arn}},
            )
        )
