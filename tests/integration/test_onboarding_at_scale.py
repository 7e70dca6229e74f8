"""Onboarding is an API call, not a deploy: 500 registered departments each get their own KMS key
(policy from the template, tags naming the department and the stage) from the provisioner's sweep,
against moto, while the template and the functions' environment stay as they are."""

from __future__ import annotations

import json
import time

from functions.core.settings import Settings
from functions.identity.directory import DirectoryRepository
from functions.identity.models import Department
from functions.identity.provisioning import Provisioner
from infra.spec import DEPARTMENT_TAG
from tests.integration.conftest import CITY, Aws

DEPARTMENTS = 500


def test_five_hundred_departments_are_provisioned_by_the_sweep_each_with_its_own_key(moto_aws: Aws, settings: Settings) -> None:
    directory = DirectoryRepository(settings.directory_table)
    names = [f"district-{n:03d}" for n in range(DEPARTMENTS)]
    for name in names:
        directory.create_department(Department(department_id=name, name=name.title(), created_at="t"))
    provisioner = Provisioner(directory, "it", query_role="arn:aws:iam::123456789012:role/cityshare-it-triggers")
    started = time.perf_counter()
    assert provisioner.sweep() == DEPARTMENTS
    elapsed = time.perf_counter() - started
    print(f"\nprovisioned {DEPARTMENTS} departments in {elapsed:.1f} s against moto")
    assert provisioner.sweep() == 0  # idempotent: nothing left to make

    kms = moto_aws.client("kms")
    keys = {directory.get_department(name).data_key for name in names}  # type: ignore[union-attr]
    assert len(keys) == DEPARTMENTS and None not in keys
    for name in (names[0], names[-1]):
        key = directory.get_department(name).data_key  # type: ignore[union-attr]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key)["Tags"]}
        assert tags == {DEPARTMENT_TAG: name, "cityshare:stage": "it"}
        assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
        policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
        denies = [s for s in policy["Statement"] if s["Effect"] == "Deny" and "StringNotEquals" in s["Condition"]]
        assert {d["Condition"]["StringNotEquals"][f"aws:PrincipalTag/{DEPARTMENT_TAG}"] for d in denies} == {name}
        alias = f"alias/cityshare/it/departments/{name}"
        assert kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"] == key
    aliases = kms.get_paginator("list_aliases").paginate().build_full_result()["Aliases"]
    assert sum(a["AliasName"].startswith("alias/cityshare/it/departments/district-") for a in aliases) == DEPARTMENTS
    assert len(CITY) + DEPARTMENTS == len(directory.list_departments())
