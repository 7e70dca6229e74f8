"""Onboarding without a deploy: what a newly registered department needs is made at run time by the
provisioner function, the one narrow path allowed to create KMS keys and API keys.

- its KMS key, from a policy template: the account administers it (through IAM), a deny lets no
  principal use it for encryption unless it carries this department's session tag — so only
  sessions of the data role acting for this department can decrypt its data, whatever any other
  policy says (functions.core.scoped) — and another lets no one disable it, schedule its deletion
  or move its alias while it carries a department alias;
- in AWS, its API key on the department usage plan, which the authorizer names for every request
  of the department: API Gateway then throttles each department on its own.

Idempotent: the key is found again by its alias, the API key by its name, and the directory keeps
the first ones recorded. Run on each DepartmentRegistered event and by a periodic sweep.
"""

from __future__ import annotations

import json
from typing import Any

from functions.core import aws
from functions.core.observability import logger
from functions.core.scoped import DEPARTMENT_TAG
from functions.identity.directory import DirectoryRepository

STAGE_TAG = "cityshare:stage"
_CRYPTO_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]


def department_key_policy(account: str, department: str, partition: str = "aws", query_role: str = "") -> dict[str, Any]:
    """The key policy every department's key gets.

    With `query_role` (AWS: the role Athena queries run as, infra/cloud/permissions.py), that one
    role may also decrypt through Athena, which reads curated objects of several departments for one derived dataset: the two
    denies together leave, besides the department's sessions, only `query_role` calling via Athena.
    """
    not_the_department = {f"aws:PrincipalTag/{DEPARTMENT_TAG}": department}
    statements: list[dict[str, Any]] = [
        {
            "Sid": "TheAccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    statements.append(
        {
            "Sid": "NotDisabledOrDeletedWhileInUse",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:DeleteAlias", "kms:UpdateAlias"],
            "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/cityshare/*"}},
        }
    )
    if not query_role:
        statements.append(_deny("OnlySessionsActingForTheDepartmentUseIt", {"StringNotEquals": not_the_department}))
    else:
        statements += [
            _deny(
                "OnlyTheDepartmentsSessionsOrAthenaUseIt",
                {"StringNotEquals": not_the_department | {"aws:CalledViaFirst": "athena.amazonaws.com"}},
            ),
            _deny(
                "ThroughAthenaOnlyThePlatformsQueryRole",
                {"StringNotEquals": not_the_department, "ArnNotEquals": {"aws:PrincipalArn": query_role}},
            ),
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def _deny(sid: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": _CRYPTO_ACTIONS,
        "Resource": "*",
        "Condition": condition,
    }


class Provisioner:
    kms = aws.LazyClient("kms")
    apigateway = aws.LazyClient("apigateway")
    sts = aws.LazyClient("sts")

    def __init__(
        self,
        directory: DirectoryRepository,
        stage: str,
        usage_plan: str = "",
        query_role: str = "",
        kms: Any = None,
        apigateway: Any = None,
        sts: Any = None,
    ) -> None:
        self._directory = directory
        self._stage = stage
        self._usage_plan = usage_plan
        self._query_role = query_role
        self._kms = kms
        self._apigateway = apigateway
        self._sts = sts

    def provision(self, department_id: str) -> bool:
        """Make what `department_id` lacks; False if there is no such department."""
        department = self._directory.get_department(department_id)
        if department is None:
            return False
        if department.data_key and (department.usage_key or not self._usage_plan):
            return True
        key = department.data_key or self._key(department_id)
        usage = department.usage_key or (self._usage_key(department_id) if self._usage_plan else None)
        self._directory.record_resources(department_id, key, usage)
        logger.info("department provisioned", extra={"department": department_id})
        return True

    def sweep(self) -> int:
        """Provision every department that lacks something (a missed event, the bootstrap's platform)."""
        waiting = [
            d.department_id
            for d in self._directory.list_departments()
            if not d.data_key or (self._usage_plan and not d.usage_key)
        ]
        return sum(self.provision(department) for department in waiting)

    def _key(self, department: str) -> str:
        alias = f"alias/cityshare/{self._stage}/departments/{department}"
        try:
            return str(self.kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
        except self.kms.exceptions.NotFoundException:
            pass
        identity = self.sts.get_caller_identity()
        partition = identity["Arn"].split(":")[1]
        created = self.kms.create_key(
            Description=f"CityShare {self._stage}: data of {department}",
            KeyUsage="ENCRYPT_DECRYPT",
            Policy=json.dumps(department_key_policy(identity["Account"], department, partition, self._query_role)),
            Tags=[{"TagKey": DEPARTMENT_TAG, "TagValue": department}, {"TagKey": STAGE_TAG, "TagValue": self._stage}],
            # KMS refuses a policy that would not let the caller change it later, unless told to skip
            # that check. The account keeps the key manageable (its first statement, through IAM);
            # the provisioner is deliberately not among those who may change key policies: a
            # compromised provisioner could otherwise open any department's key to itself.
            BypassPolicyLockoutSafetyCheck=True,
        )["KeyMetadata"]
        self.kms.enable_key_rotation(KeyId=created["KeyId"])
        try:
            self.kms.create_alias(AliasName=alias, TargetKeyId=created["KeyId"])
        except self.kms.exceptions.AlreadyExistsException:
            # Another provisioner won the race: use its key, retire this one.
            self.kms.schedule_key_deletion(KeyId=created["KeyId"], PendingWindowInDays=7)
            return str(self.kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
        return str(created["Arn"])

    def _usage_key(self, department: str) -> str:
        name = f"cityshare-{self._stage}-{department}"
        found = self.apigateway.get_api_keys(nameQuery=name, includeValues=True).get("items", [])
        key = next((k for k in found if k.get("name") == name), None)
        if key is None:
            key = self.apigateway.create_api_key(
                name=name, enabled=True, tags={DEPARTMENT_TAG: department, STAGE_TAG: self._stage}
            )
            self.apigateway.create_usage_plan_key(usagePlanId=self._usage_plan, keyId=key["id"], keyType="API_KEY")
        return str(key["value"])
