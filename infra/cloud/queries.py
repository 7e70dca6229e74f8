"""The Glue database where ingest registers each published version, and the Athena workgroup in
which the triggers function runs large derived datasets (results encrypted with the platform key
under athena-results/ of the data bucket, the workgroup's settings enforced, a scan cut-off)."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

MAX_BYTES_SCANNED = 200 * 1024**3


class Queries(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, stage: str, catalog: str, workgroup: str, bucket: s3.IBucket, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = f"cityshare_{stage}_{catalog}".replace("-", "_")
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Stack.of(self).account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="CityShare: one table per published dataset version"
            ),
        )
        self.workgroup_name = f"cityshare-{stage}-{workgroup}"
        self.workgroup = athena.CfnWorkGroup(
            self,
            "Workgroup",
            name=self.workgroup_name,
            description="CityShare derived datasets over curated versions",
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=MAX_BYTES_SCANNED,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{bucket.bucket_name}/athena-results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn
                    ),
                ),
            ),
        )
        stack = Stack.of(self)
        self._catalog_arn = stack.format_arn(service="glue", resource="catalog")
        self._database_arn = stack.format_arn(service="glue", resource="database", resource_name=self.database_name)
        self._tables_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{self.database_name}/*")
        self._workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name)

    def grant_register(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetDatabase"],
            resource_arns=[self._catalog_arn, self._database_arn, self._tables_arn],
        )

    def grant_query(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["glue:GetTable", "glue:GetTables", "glue:GetDatabase", "glue:GetPartitions"],
            resource_arns=[self._catalog_arn, self._database_arn, self._tables_arn],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:StopQueryExecution",
            ],
            resource_arns=[self._workgroup_arn],
        )
