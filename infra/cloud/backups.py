"""Backups: AWS Backup copies every table each night into a vault of the stage, encrypted with the
operations key, kept `backupRetentionDays` (cdk.json). Recovery points cannot be deleted from the
vault by anyone (its access policy), and where `backupVaultLock` is set (prod) the vault is locked
in governance mode: no recovery point leaves before the retention, whatever a role's policy says.
Tables also keep 35 days of point-in-time recovery (infra/cloud/tables.py); restores are in
docs/restore.md.

The data bucket is not in the plan: its objects are encrypted with each department's own key,
whose policy admits only that department's sessions, and the bucket's policy refuses untagged
sessions under department roots, so a backup role able to read them would be the one role that
reads every department's data. The bucket keeps its objects' versions instead (no one may delete a
version; noncurrent versions expire after `noncurrentVersionDays`).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# The vault key's use by AWS Backup on the backup role's behalf (AWS Backup's documented needs).
VAULT_KEY_ACTIONS = ["kms:CreateGrant", "kms:GenerateDataKey", "kms:Decrypt", "kms:RetireGrant", "kms:DescribeKey"]
# The tables' key, for DynamoDB to read the tables it backs up and restores for AWS Backup.
TABLE_KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey"]


class Backups(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        stage: str,
        tables: dict[str, dynamodb.TableV2],
        tables_key: kms.IKey,
        vault_key: kms.IKey,
        retention_days: int,
        lock: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vault = backup.BackupVault(
            self,
            "Vault",
            encryption_key=vault_key,
            block_recovery_point_deletion=True,
            # Governance mode (no `changeable_for`): a lock the account's administrators can still lift
            # deliberately, never a role's mistake or a compromised function.
            lock_configuration=backup.LockConfiguration(min_retention=Duration.days(retention_days)) if lock else None,
            # Kept in every stage: AWS Backup refuses to delete a vault that holds recovery points, and
            # no one may delete those before they expire, so a dev stack's deletion would fail on it.
            # Its name is generated (the BackupVault output), so a stage deployed again after its
            # stack was deleted gets a new vault beside the kept one instead of failing on the name.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.plan = backup.BackupPlan(
            self,
            "Plan",
            backup_plan_name=f"cityshare-{stage}",
            backup_vault=self.vault,
            backup_plan_rules=[
                backup.BackupPlanRule(
                    rule_name="Nightly",
                    schedule_expression=events.Schedule.cron(hour="2", minute="30"),
                    start_window=Duration.hours(1),
                    completion_window=Duration.hours(8),
                    delete_after=Duration.days(retention_days),
                )
            ],
        )
        self.selection = self.plan.add_selection(
            "Tables",
            backup_selection_name=f"cityshare-{stage}-tables",
            resources=[backup.BackupResource.from_dynamo_db_table(table) for _, table in sorted(tables.items())],
            allow_restores=True,
        )
        role = self.selection.grant_principal
        iam.Grant.add_to_principal(grantee=role, actions=VAULT_KEY_ACTIONS, resource_arns=[vault_key.key_arn])
        iam.Grant.add_to_principal(grantee=role, actions=TABLE_KEY_ACTIONS, resource_arns=[tables_key.key_arn])
