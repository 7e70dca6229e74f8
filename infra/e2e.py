"""`make e2e STAGE=dev PROFILE=admin.json`: the end-to-end and security suites against a deployed
stack, through its outputs, as its platform admin.

The profile is the one the README's deploy steps make (`keys profile` after `bootstrap-admin`); its
endpoint must be the stack's `ApiUrl` output and its audience the `Audience` output, so that the
suites never run against another stack than the one named. Tests that need the embedded stack's
insides (its moto server, its process, a stack of their own) are skipped and say so.

    python -m infra.e2e --stage dev --profile admin.json [pytest arguments]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.cloud.config import DeploymentConfig

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("tests/e2e", "tests/security")


def stack_outputs(cloudformation: Any, stage: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=f"CityShare-{stage}")["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def mismatches(profile: dict[str, Any], outputs: dict[str, str]) -> list[str]:
    """Why this profile does not belong to this stack (an empty list: it does)."""
    found = []
    if profile.get("endpoint", "").rstrip("/") != outputs.get("ApiUrl", "").rstrip("/"):
        found.append(f"the profile's endpoint {profile.get('endpoint')!r} is not the stack's ApiUrl {outputs.get('ApiUrl')!r}")
    if profile.get("audience") != outputs.get("Audience"):
        found.append(
            f"the profile's audience {profile.get('audience')!r} is not the stack's Audience {outputs.get('Audience')!r}"
        )
    if (profile.get("department"), profile.get("principal")) != ("platform", "admin"):
        found.append("the suites act as the platform admin: give the profile of platform/admin")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--profile", required=True, type=Path, help="The platform admin's profile for this stage")
    args, pytest_arguments = parser.parse_known_args(argv)
    import boto3
    import botocore.exceptions

    context = json.loads((ROOT / "cdk.json").read_text())["context"].get("cityshare", {})
    config = DeploymentConfig.from_context(context, args.stage)
    if not args.profile.exists():
        print(f"CityShare e2e: no profile at {args.profile} (the README's deploy steps make it)", file=sys.stderr)
        return 2
    try:
        outputs = stack_outputs(boto3.client("cloudformation", region_name=config.region), args.stage)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        print(f"CityShare e2e: cannot read the outputs of CityShare-{args.stage} ({error})", file=sys.stderr)
        return 2
    problems = mismatches(json.loads(args.profile.read_text()), outputs)
    for problem in problems:
        print(f"CityShare e2e: {problem}", file=sys.stderr)
    if problems:
        return 2
    environment = {**os.environ, "CITYSHARE_E2E_PROFILE": str(args.profile.resolve())}
    command = [sys.executable, "-m", "pytest", *SUITES, "-p", "no:cacheprovider", *pytest_arguments]
    return subprocess.run(command, cwd=ROOT, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
