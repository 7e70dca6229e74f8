"""`make e2e STAGE=dev` runs the suites against a deployed stack through the admin's profile alone
(infra/e2e.py). Here the "deployed" stack is an embedded one reached only through its profile, as
a stack in AWS would be: the suite passes, and the tests that need the embedded stack's insides
say they were skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.e2e import mismatches, stack_outputs
from tests.conftest import ROOT, RunningStack, running_stack


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from running_stack(tmp_path_factory.mktemp("elsewhere"), "--in-memory")


def test_the_directory_suite_passes_against_a_stack_known_only_by_its_profile(elsewhere: RunningStack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["CITYSHARE_E2E_PROFILE"] = str(elsewhere.profile_path)
    run = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "pytest",
                "tests/e2e/test_directory.py",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
                "-rs",
            ),
            *("-k", "registers_a_department or rotation or rewritten_below_its_seal"),  # two that run, one that cannot
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "1 skipped" in run.stdout and "needs the embedded stack" in run.stdout


class _Stacks:
    def describe_stacks(self, StackName: str) -> dict[str, object]:  # noqa: N803 (boto3's spelling)
        assert StackName == "CityShare-dev"
        outputs = [
            {"OutputKey": "ApiUrl", "OutputValue": "https://a.example/prod/"},
            {"OutputKey": "Audience", "OutputValue": "cityshare-dev"},
        ]
        return {"Stacks": [{"Outputs": outputs}]}


def test_a_profile_of_another_stack_is_refused_before_anything_runs(tmp_path: Path) -> None:
    outputs = stack_outputs(_Stacks(), "dev")
    admin = {"endpoint": "https://a.example/prod", "audience": "cityshare-dev", "department": "platform", "principal": "admin"}
    assert mismatches(admin, outputs) == []
    assert mismatches(admin | {"endpoint": "https://b.example/prod"}, outputs)[0].startswith("the profile's endpoint")
    assert mismatches(admin | {"audience": "cityshare-prod"}, outputs)[0].startswith("the profile's audience")
    assert "platform admin" in mismatches(admin | {"department": "transport"}, outputs)[0]
