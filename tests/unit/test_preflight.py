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
from infra.preflight import problems
from tests.conftest import ROOT


class _NoCredentials:
    def get_caller_identity(self) -> Any:
        raise botocore.exceptions.NoCredentialsError()


@mock_aws
def test_credentials_for_another_account_are_refused_before_anything_is_built() -> None:
    sts = boto3.client("sts", region_name="eu-west-1")
    account = sts.get_caller_identity()["Account"]
    assert problems(DeploymentConfig(stage="dev", account=account), sts) == []
    assert problems(DeploymentConfig(stage="dev"), sts) == []  # the account of the credentials
    [mismatch] = problems(DeploymentConfig(stage="prod", account="111111111111"), sts)
    assert f"account {account}" in mismatch and "111111111111" in mismatch
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
