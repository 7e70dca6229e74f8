"""Before `make deploy` builds anything: credentials that AWS accepts, for the account and region the
stage names in cdk.json, and (where the stage reserves concurrency) an account whose Lambda limit
can take it. A mistake is said in a sentence in seconds, not after a minute of building.

    python -m infra.preflight --stage dev
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infra.cloud.config import DeploymentConfig
from infra.spec import SPEC, UNRESERVED_MINIMUM

ROOT = Path(__file__).resolve().parents[1]


def problems(config: DeploymentConfig, sts: Any, lambdas: Any = None) -> list[str]:
    """What stops a deployment of `config` with these credentials (an empty list: nothing)."""
    import botocore.exceptions

    try:
        identity = sts.get_caller_identity()
    except botocore.exceptions.NoCredentialsError:
        return [
            "No AWS credentials: set AWS_PROFILE (after `aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "for the city's account, then run `make deploy` again"
        ]
    except botocore.exceptions.NoRegionError:
        return ["No AWS region: set `region` in cdk.json's cityshare context, or AWS_REGION"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        return [f"AWS refused the credentials ({error}): renew them (`aws sso login`) and run `make deploy` again"]
    if config.retain_data and not config.account:
        return [
            f'Stage {config.stage} keeps its data but names no account: add "account": "{identity["Account"]}" '
            f"to its entry in cdk.json (if that is the city's account for it), so that it deploys there and nowhere else"
        ]
    if config.account and identity["Account"] != config.account:
        return [
            f"These credentials are for account {identity['Account']}, but cdk.json deploys stage {config.stage} "
            f"to {config.account}: switch AWS_PROFILE, or correct cdk.json"
        ]
    return concurrency_problems(config, lambdas) if lambdas is not None else []


def concurrency_problems(config: DeploymentConfig, lambdas: Any) -> list[str]:
    """Lambda refuses a reservation that would leave the account fewer than 100 unreserved concurrent
    executions (new accounts often have a limit of 10): said before building, not at the end of a deploy."""
    if not config.reserved_concurrency:
        return []
    import botocore.exceptions

    wanted = sum(SPEC.reserved_concurrency().values())
    try:
        limit = int(lambdas.get_account_settings()["AccountLimit"]["ConcurrentExecutions"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        return [f"Could not read the account's Lambda concurrency limit ({error}); it is needed for reservedConcurrency"]
    if limit - wanted < UNRESERVED_MINIMUM:
        return [
            f"Stage {config.stage} reserves {wanted} concurrent executions for its functions (reservedConcurrency in "
            f"cdk.json), but this account's Lambda limit is {limit} and AWS keeps {UNRESERVED_MINIMUM} unreserved: "
            f"ask for a higher limit (Service Quotas, Lambda concurrent executions, at least "
            f"{wanted + UNRESERVED_MINIMUM}), or set reservedConcurrency to false for this stage"
        ]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)
    import boto3

    context = json.loads((ROOT / "cdk.json").read_text())["context"].get("cityshare", {})
    config = DeploymentConfig.from_context(context, args.stage)
    found = problems(config, boto3.client("sts", region_name=config.region), boto3.client("lambda", region_name=config.region))
    for problem in found:
        print(f"CityShare cannot deploy {args.stage}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
