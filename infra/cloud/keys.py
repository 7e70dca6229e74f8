"""KMS keys: one per department for its data, one for the platform's own tables and buckets."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct


class Keys(Construct):
    def __init__(self, scope: Construct, construct_id: str, stage: str, departments: list[str]) -> None:
        super().__init__(scope, construct_id)
        self.platform = kms.Key(
            self,
            "Platform",
            alias=f"alias/cityshare/{stage}/platform",
            description="CityShare platform tables and buckets",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.departments = {
            department: kms.Key(
                self,
                f"Department-{department}",
                alias=f"alias/cityshare/{stage}/{department}",
                description=f"CityShare data owned by {department}",
                enable_key_rotation=True,
                removal_policy=RemovalPolicy.RETAIN,
            )
            for department in departments
        }
