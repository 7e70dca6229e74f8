"""`make deploy` checks the credentials first, and says what is wrong in a sentence."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import boto3
import botocore.exceptions
from moto import mock_aws

from infra.cloud.config import DeploymentConfig
from infra.preflight import concurrency_problems, problems
from infra.spec import SPEC, UNRESERVED_MINIMUM
from tests.conftest import ROOT


class _NoCredentials:
    def get_caller_identity(self) -> Any:
        raise botocore.exceptions.NoCredentialsError()


@mock_aws
def test_credentials_for_another_account_are_refused_before_anything_is_built() -> None:
    sts = boto3.client("sts", region_name="eu-west-1")
    account = sts.get_caller_identity()["Account"]
    assert problems(DeploymentConfig(stage="dev", account=account, retainData=False), sts) == []
    assert problems(DeploymentConfig(stage="dev", retainData=False), sts) == []  # the account of the credentials
    [mismatch] = problems(DeploymentConfig(stage="prod", account="111111111111"), sts)
    assert f"account {account}" in mismatch and "111111111111" in mismatch
    [unpinned] = problems(DeploymentConfig(stage="prod", retainData=True), sts)  # a stage that keeps data names its account
    assert f'"account": "{account}"' in unpinned and "cdk.json" in unpinned
    [missing] = problems(DeploymentConfig(stage="dev"), _NoCredentials())
    assert "No AWS credentials" in missing


def test_make_deploy_without_credentials_stops_in_seconds(tmp_path: Any) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    began = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "infra.preflight", "--stage", "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1 and "CityShare cannot deploy dev: No AWS credentials" in run.stderr
    assert time.monotonic() - began < 15


class _Lambdas:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def get_account_settings(self) -> dict[str, Any]:
        return {"AccountLimit": {"ConcurrentExecutions": self.limit}, "AccountUsage": {"FunctionCount": 0}}


def test_a_stage_that_reserves_concurrency_needs_an_account_that_can_take_it() -> None:
    """Lambda refuses a reservation leaving fewer than 100 unreserved executions (moto does not): a
    new account's limit of 10 is said before building, with what to ask for."""
    wanted = sum(SPEC.reserved_concurrency().values())
    reserving = DeploymentConfig(stage="prod", reservedConcurrency=True)
    assert concurrency_problems(reserving, _Lambdas(1000)) == []
    [small] = concurrency_problems(reserving, _Lambdas(10))
    assert "limit is 10" in small and f"at least {wanted + UNRESERVED_MINIMUM}" in small
    assert concurrency_problems(reserving, _Lambdas(wanted + UNRESERVED_MINIMUM)) == []
    assert concurrency_problems(reserving, _Lambdas(wanted + UNRESERVED_MINIMUM - 1)) != []
    assert concurrency_problems(DeploymentConfig(stage="dev"), _Lambdas(10)) == []  # nothing reserved
